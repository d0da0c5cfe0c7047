package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// History reads the channel's retained, unexpired publications and its
// position. The position is the channel's last stored message, read first;
// publications are then read only up to that message, so they agree with
// the position whatever is published meanwhile. A channel never used before
// gets its epoch here, stored in an epoch marker.
//
// Each publication read is one request to the server: walking back from the
// last message along the links in its headers, or forward from the
// channel's first message, whichever reaches the wanted range with fewer
// reads. Recovering a client close to the top, the common case, is a short
// walk back.
func (e *Engine) History(ctx context.Context, channel string, q engine.HistoryQuery) (engine.HistoryResult, error) {
	c, err := e.client(ctx)
	if err != nil {
		return engine.HistoryResult{}, err
	}
	t, last, err := e.readTail(ctx, c, channel)
	if err == nil && last == nil {
		if err = e.startEpoch(ctx, c, channel); err == nil {
			t, last, err = e.readTail(ctx, c, channel)
		}
		if err == nil && last == nil {
			err = errors.New("channel has no message after starting its epoch")
		}
	}
	if err != nil {
		return engine.HistoryResult{}, e.fail("history", err)
	}
	res := engine.HistoryResult{Position: protocol.StreamPosition{Epoch: t.epoch, Offset: t.offset}}

	// The wanted offsets are (lo, hi]; everything at or below the floor is gone.
	lo, hi := t.floor, t.offset
	if q.Since != nil {
		switch {
		case !q.Reverse:
			lo = max(lo, q.Since.Offset)
		case q.Since.Offset == 0:
			hi = 0
		default:
			hi = min(hi, q.Since.Offset-1)
		}
	}
	if q.Limit == 0 || hi <= lo {
		return res, nil
	}
	r := historyRead{
		c: c, channel: channel, subject: e.names.history(channel),
		lo: lo, hi: hi, limit: hi - lo, reverse: q.Reverse, now: time.Now().UnixMilli(),
	}
	if q.Limit > 0 {
		r.limit = min(r.limit, uint64(q.Limit))
	}
	// Estimated reads each way. Forward starts near the floor; trimming
	// keeps the messages below it few.
	back, forward := t.offset-lo, lo-t.floor+r.limit
	if q.Reverse {
		back, forward = t.offset-hi+r.limit, hi-t.floor
	}
	if back <= forward {
		res.Publications, err = r.backward(ctx, last)
	} else {
		res.Publications, err = r.forward(ctx, t.seq)
	}
	if err != nil {
		return engine.HistoryResult{}, e.fail("history", err)
	}
	return res, nil
}

// historyRead collects a channel's live publications with offsets in
// (lo, hi], at most limit of them: the lowest, or with reverse the highest.
type historyRead struct {
	c                *conn
	channel, subject string
	lo, hi, limit    uint64
	reverse          bool
	now              int64 // Unix ms, for expiry
}

// take appends m to out if it is a wanted publication, and returns what
// its headers say so the caller can tell when to stop.
func (r *historyRead) take(m *jetstream.RawStreamMsg, out []*protocol.Publication) ([]*protocol.Publication, entry, error) {
	en, err := parseEntry(m.Header, m.Sequence)
	if err != nil {
		return out, en, err
	}
	if en.kind != "" || en.offset <= r.lo || en.offset > r.hi || en.expired(r.now) {
		return out, en, nil
	}
	pub, err := decodePublication(r.channel, en.offset, m.Header, m.Data)
	if err != nil {
		return out, en, fmt.Errorf("offset %d: %w", en.offset, err)
	}
	return append(out, pub), en, nil
}

// backward walks from the channel's last message to older ones, each
// message naming its predecessor's sequence, until it is below the range or
// has the newest limit publications. A purged predecessor ends the walk:
// purges remove a channel's oldest messages first.
func (r *historyRead) backward(ctx context.Context, last *jetstream.RawStreamMsg) ([]*protocol.Publication, error) {
	var out []*protocol.Publication
	for m := last; ; {
		var (
			en  entry
			err error
		)
		if out, en, err = r.take(m, out); err != nil {
			return nil, err
		}
		if en.offset <= r.lo || en.prev == 0 || (r.reverse && uint64(len(out)) == r.limit) {
			break
		}
		m, err = r.c.history.GetMsg(ctx, en.prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read message %d: %w", en.prev, err)
		}
	}
	if !r.reverse {
		slices.Reverse(out)
		out = out[:min(uint64(len(out)), r.limit)]
	}
	return out, nil
}

// forward reads the channel's messages in stream order from its first,
// through the last one at the time of the read (stream sequence lastSeq),
// until it is past the range or has the oldest limit publications.
func (r *historyRead) forward(ctx context.Context, lastSeq uint64) ([]*protocol.Publication, error) {
	var out []*protocol.Publication
	for seq := uint64(0); ; {
		m, err := r.c.history.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(r.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read message after %d: %w", seq, err)
		}
		if m.Sequence > lastSeq {
			break
		}
		var en entry
		if out, en, err = r.take(m, out); err != nil {
			return nil, err
		}
		if en.offset >= r.hi || m.Sequence == lastSeq || (!r.reverse && uint64(len(out)) == r.limit) {
			break
		}
		seq = m.Sequence + 1
	}
	if r.reverse {
		out = out[max(0, len(out)-int(r.limit)):]
		slices.Reverse(out)
	}
	return out, nil
}
