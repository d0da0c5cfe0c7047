package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// defaultIdempotencyTTL applies when a publish sets IdempotencyKey but no
// IdempotencyTTL: a key the caller bothered to send should protect a retry.
const defaultIdempotencyTTL = time.Minute

// idempotencyRecord is the value of an idempotency key in the bucket: the
// first publish's position (zero for an unstored one) and when the key
// stops applying. The bucket's age limit is the longest TTL allowed, so
// each record carries its own.
type idempotencyRecord struct {
	Epoch   string `json:"e,omitempty"`
	Offset  uint64 `json:"o,omitempty"`
	Expires int64  `json:"x"` // Unix ms
}

// idempotencyKey names channel's key in the bucket and, with a revision,
// in JetStream message ids: a hash, as keys and channels may be long and
// hold any byte.
func idempotencyKey(channel, key string) string {
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// publishKeyed is Publish with an idempotency key. A live record answers
// at once. Otherwise the publish is stored with the message id key.rev,
// rev being the revision of the expired record or 0: two nodes racing on
// one key send the same id, JetStream stores one and tells the other the
// original's sequence, and the next generation of the key, after this
// record, gets a new id. The winner then records its position.
func (e *Engine) publishKeyed(ctx context.Context, c *conn, pub *protocol.Publication, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	ttl := opts.IdempotencyTTL
	if ttl <= 0 {
		ttl = defaultIdempotencyTTL
	}
	ttl = min(ttl, e.cfg.MaxIdempotencyTTL)
	key := idempotencyKey(pub.Channel, opts.IdempotencyKey)
	rec, rev, err := e.idempotencyGet(ctx, c, key)
	if err != nil {
		return protocol.StreamPosition{}, e.fail("publish", err)
	}
	if rev != 0 && rec.Expires > time.Now().UnixMilli() {
		return protocol.StreamPosition{Epoch: rec.Epoch, Offset: rec.Offset}, nil
	}
	fresh := idempotencyRecord{Expires: pub.Time + ttl.Milliseconds()}

	if opts.HistorySize <= 0 {
		// Nothing is stored to deduplicate against, so the record is the
		// claim: whoever writes revision rev+1 first publishes.
		if err := e.idempotencyPut(ctx, c, key, rev, fresh); err != nil {
			if wrongLastSequence(err) {
				return protocol.StreamPosition{}, nil
			}
			return protocol.StreamPosition{}, e.fail("publish", err)
		}
		return protocol.StreamPosition{}, e.publishEphemeral(c, pub)
	}

	pos, ack, err := e.store(ctx, c, pub, opts, key+"."+strconv.FormatUint(rev, 10))
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	if ack.Duplicate {
		return e.duplicateResult(ctx, c, key, rev, ack.Sequence)
	}
	fresh.Epoch, fresh.Offset = pos.Epoch, pos.Offset
	if err := e.idempotencyPut(ctx, c, key, rev, fresh); err != nil && !wrongLastSequence(err) {
		// Stored and acknowledged all the same; a retry within JetStream's
		// duplicate window still finds the message id.
		e.log.Warn("record idempotency key", "channel", pub.Channel, "err", err)
	}
	return pos, nil
}

// duplicateResult answers a publish whose message id JetStream had already
// stored at sequence seq: that message's position, or, if retention has
// removed it, the position its publisher records.
func (e *Engine) duplicateResult(ctx context.Context, c *conn, key string, rev, seq uint64) (protocol.StreamPosition, error) {
	m, err := c.history.GetMsg(ctx, seq)
	if err == nil {
		en, err := parseEntry(m.Header, m.Sequence)
		if err != nil {
			return protocol.StreamPosition{}, e.fail("publish", err)
		}
		return protocol.StreamPosition{Epoch: en.epoch, Offset: en.offset}, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return protocol.StreamPosition{}, e.fail("publish", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		rec, r, err := e.idempotencyGet(ctx, c, key)
		if err != nil {
			return protocol.StreamPosition{}, e.fail("publish", err)
		}
		if r > rev {
			return protocol.StreamPosition{Epoch: rec.Epoch, Offset: rec.Offset}, nil
		}
		select {
		case <-ctx.Done():
			return protocol.StreamPosition{}, e.fail("publish", fmt.Errorf("waiting for the first publish with this idempotency key: %w", ctx.Err()))
		case <-time.After(delay):
		}
	}
}

// idempotencyGet reads key's record and its revision, 0 when absent.
func (e *Engine) idempotencyGet(ctx context.Context, c *conn, key string) (idempotencyRecord, uint64, error) {
	var rec idempotencyRecord
	kve, err := c.idem.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, fmt.Errorf("read idempotency key: %w", err)
	}
	if err := json.Unmarshal(kve.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("decode idempotency key: %w", err)
	}
	return rec, kve.Revision(), nil
}

// idempotencyPut writes rec as key's record if its revision is still rev,
// failing with JetStream's wrong-last-sequence error otherwise.
func (e *Engine) idempotencyPut(ctx context.Context, c *conn, key string, rev uint64, rec idempotencyRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode idempotency key: %w", err)
	}
	if rev == 0 {
		_, err = c.idem.Create(ctx, key, v)
	} else {
		_, err = c.idem.Update(ctx, key, v, rev)
	}
	return err
}
