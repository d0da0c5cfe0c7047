package durable

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// sweepInterval is how often expired data is deleted. Reads already skip
// expired publications and idempotency records; the sweep reclaims space.
const sweepInterval = time.Second

// Per tick, the sweep looks at no more than this many channels, publications
// per channel and idempotency records, so it never competes with publishers
// for long; a cursor carries each scan over to the next tick.
const (
	sweepChannels     = 256
	sweepPublications = 1024
	sweepIdempotency  = 1024
)

// sweeper remembers where the last tick's scans stopped.
type sweeper struct {
	metaCursor []byte
	idemCursor []byte
}

func (e *Engine) sweepLoop() {
	defer close(e.swept)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var s sweeper
	for {
		select {
		case <-e.stopSweep:
			return
		case now := <-t.C:
			// Errors here are retried on a later tick; a failing store shows
			// up in Publish and History, which report it.
			_ = e.sweep(&s, now.UnixMilli())
		}
	}
}

// sweep runs one bounded pass. It reads the store directly: Close stops the
// sweep before closing the store. Deletions go through the writer, which
// owns every change.
func (e *Engine) sweep(s *sweeper, now int64) error {
	var ops []*op
	trims, err := e.scanExpiredHistory(s, now)
	if err != nil {
		return err
	}
	ops = append(ops, trims...)
	keys, err := e.scanExpiredIdempotency(s, now)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		ops = append(ops, &op{kind: opDropIdem, keys: keys, sweptAt: now})
	}
	// Submitted together so they share one batch and one sync.
	return e.w.doAll(append(ops, &op{kind: opEvict})...)
}

// scanExpiredHistory returns a trim op for each channel, among the next
// sweepChannels, whose oldest publications have expired.
func (e *Engine) scanExpiredHistory(s *sweeper, now int64) ([]*op, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindMeta}, UpperBound: []byte{kindMeta + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ops []*op
	valid := it.First()
	if s.metaCursor != nil {
		valid = it.SeekGE(s.metaCursor)
	}
	for n := 0; valid && n < sweepChannels; n, valid = n+1, it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			break // reported by it.Error
		}
		m, err := decodeMeta(v)
		if err != nil || m.low > m.top {
			continue
		}
		channel := string(it.Key()[1:])
		upTo, err := e.expiredPrefix(channel, m.low, m.top, now)
		if err != nil {
			return nil, err
		}
		if upTo >= m.low {
			ops = append(ops, &op{kind: opTrim, channel: channel, upTo: upTo})
		}
	}
	s.metaCursor = nil
	if valid {
		s.metaCursor = bytes.Clone(it.Key())
	}
	return ops, it.Error()
}

// expiredPrefix returns the highest offset in low..top such that it and all
// before it have expired, or low-1 if the oldest has not. Stopping at the
// first live publication keeps offsets contiguous; later expired ones are
// filtered on read until the prefix reaches them.
func (e *Engine) expiredPrefix(channel string, low, top uint64, now int64) (uint64, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: pubKey(channel, low), UpperBound: pubKey(channel, top+1)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	upTo := low - 1
	for valid, n := it.First(), 0; valid && n < sweepPublications; valid, n = it.Next(), n+1 {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		expires, err := decodeExpiry(v)
		if err != nil || expires == 0 || expires > now {
			break
		}
		k := it.Key()
		upTo = binary.BigEndian.Uint64(k[len(k)-8:])
	}
	return upTo, it.Error()
}

// scanExpiredIdempotency returns the keys of expired records among the next
// sweepIdempotency.
func (e *Engine) scanExpiredIdempotency(s *sweeper, now int64) ([][]byte, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindIdem}, UpperBound: []byte{kindIdem + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var keys [][]byte
	valid := it.First()
	if s.idemCursor != nil {
		valid = it.SeekGE(s.idemCursor)
	}
	for n := 0; valid && n < sweepIdempotency; n, valid = n+1, it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			break // reported by it.Error
		}
		rec, err := decodeIdempotent(v)
		if err != nil || rec.expires <= now {
			keys = append(keys, bytes.Clone(it.Key()))
		}
	}
	s.idemCursor = nil
	if valid {
		s.idemCursor = bytes.Clone(it.Key())
	}
	return keys, it.Error()
}
