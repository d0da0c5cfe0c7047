package nats

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// maxExpiryMarks bounds the marks one channel holds. With a steady
// HistoryTTL a new mark starts every eighth of it, so about nine are live;
// the cap only matters after the TTL shrinks.
const maxExpiryMarks = 16

// expiryMark says that every message of a channel up to stream sequence seq
// that this node stored has expired by at (Unix ms).
type expiryMark struct {
	seq   uint64
	at    int64
	first int64 // at when the mark was started
}

// expiryMarks are the marks of one channel's messages stored by this node,
// oldest first, with non-decreasing at: each mark's time is the latest expiry
// of its messages and of every earlier one, so a message whose TTL was
// longer than its successors' is never purged before its own expiry.
type expiryMarks struct {
	// gen is the cache generation of the marks. After a reconnect the
	// server may hold a recreated stream whose sequences restart, where an
	// old mark would cover new messages; marks of an older generation are
	// dropped unused.
	gen   uint64
	marks []expiryMark
}

// add records that the message at seq expires at at, the publish time plus
// ttl (ms). Marks closer together than an eighth of ttl are merged, so a
// channel's expired messages are purged in a few steps per TTL whatever the
// publish rate.
func (m *expiryMarks) add(gen, seq uint64, at, ttl int64) {
	if m.gen != gen {
		m.gen, m.marks = gen, m.marks[:0]
	}
	if n := len(m.marks); n > 0 {
		last := &m.marks[n-1]
		at = max(at, last.at)
		if at-last.first < ttl/8 || n == maxExpiryMarks {
			last.seq, last.at = seq, at
			return
		}
	}
	m.marks = append(m.marks, expiryMark{seq: seq, at: at, first: at})
}

// expired removes the marks expired at now (Unix ms) and returns the
// sequence below which every message they cover lies, or 0 when none has
// expired or the marks are of another generation than gen.
func (m *expiryMarks) expired(gen uint64, now int64) uint64 {
	if m.gen != gen {
		m.marks = m.marks[:0]
		return 0
	}
	i := 0
	for i < len(m.marks) && m.marks[i].at <= now {
		i++
	}
	if i == 0 {
		return 0
	}
	below := m.marks[i-1].seq + 1
	m.marks = append(m.marks[:0], m.marks[i:]...)
	return below
}

// expire purges the channel's messages that this node stored and whose
// HistoryTTL has passed, so a channel's age bounds its storage as its size
// does. Reads skip expired publications anyway, so a failed purge costs only
// storage. last is the sequence of the message just stored, the channel's
// newest: it is never purged, whatever the clock says (its publish may have
// waited longer than the TTL), since it carries the channel's offset and
// epoch. Caller must hold ch.mu and call it after storing a message.
func (e *Engine) expire(ctx context.Context, c *conn, subject string, ch *channel, now int64, last uint64) {
	below := min(ch.expiry.expired(ch.gen, now), last)
	if below == 0 {
		return
	}
	if err := c.history.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(below)); err != nil && !e.closed.Load() {
		e.log.Warn("purge expired channel history", "subject", subject, "err", err)
	}
}
