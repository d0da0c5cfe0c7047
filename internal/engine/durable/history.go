package durable

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// History reads the channel's retained, unexpired publications and its
// position. Both come from the last synced batch: a publication that a crash
// could still lose is never returned. A channel's first use, even this read,
// creates its epoch, persisted before it is returned.
func (e *Engine) History(ctx context.Context, channel string, q engine.HistoryQuery) (engine.HistoryResult, error) {
	if err := e.check(ctx, channel); err != nil {
		return engine.HistoryResult{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return engine.HistoryResult{}, engine.ErrClosed
	}
	now := time.Now().UnixMilli()
	st, err := e.cache.lookup(channel, false, now)
	if err != nil {
		return engine.HistoryResult{}, err
	}
	var synced bool
	if st != nil {
		synced, _, _ = st.view()
	}
	if !synced {
		if st, err = e.ensure(ctx, channel); err != nil {
			return engine.HistoryResult{}, err
		}
	}
	_, top, low := st.view()
	res := engine.HistoryResult{Position: protocol.StreamPosition{Epoch: st.epoch, Offset: top}}
	if q.Limit == 0 {
		return res, nil
	}

	// Offsets to read: lo..hi inclusive.
	lo, hi := low, top
	if q.Since != nil {
		if q.Reverse {
			if q.Since.Offset == 0 {
				return res, nil
			}
			hi = min(hi, q.Since.Offset-1)
		} else {
			if q.Since.Offset >= top { // also keeps Offset+1 from wrapping
				return res, nil
			}
			lo = max(lo, q.Since.Offset+1)
		}
	}
	if lo > hi {
		return res, nil
	}
	res.Publications, err = e.readRange(channel, lo, hi, q.Limit, q.Reverse, now)
	return res, err
}

// ensure has the writer create and persist the channel's meta if needed.
func (e *Engine) ensure(ctx context.Context, channel string) (*channelState, error) {
	o := &op{kind: opEnsure, channel: channel}
	if err := e.w.do(ctx, o); err != nil {
		return nil, err
	}
	return o.state, nil
}

// readRange returns up to limit (all if negative) unexpired publications with
// offsets lo..hi, oldest first or, with reverse, newest first. Caller must
// hold e.mu for reading.
func (e *Engine) readRange(channel string, lo, hi uint64, limit int, reverse bool, now int64) ([]*protocol.Publication, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: pubKey(channel, lo), UpperBound: pubKey(channel, hi+1)})
	if err != nil {
		return nil, fmt.Errorf("durable: read history: %w", err)
	}
	defer it.Close()
	var out []*protocol.Publication
	if limit > 0 {
		out = make([]*protocol.Publication, 0, min(uint64(limit), hi-lo+1))
	}
	valid := it.First()
	if reverse {
		valid = it.Last()
	}
	for ; valid && (limit < 0 || len(out) < limit); valid = step(it, reverse) {
		k := it.Key()
		offset := binary.BigEndian.Uint64(k[len(k)-8:])
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("durable: read history: %w", err)
		}
		pub, expires, err := decodePublication(channel, offset, v)
		if err != nil {
			return nil, err
		}
		if expires == 0 || expires > now {
			out = append(out, pub)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("durable: read history: %w", err)
	}
	return out, nil
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}
