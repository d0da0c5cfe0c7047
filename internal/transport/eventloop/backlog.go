package eventloop

import "sync/atomic"

// Backlog counts the bytes a writer handed to a socket that the kernel has
// not taken yet, so the writer can hold back while a peer reads slowly and
// resume once it caught up, instead of buffering without bound. The zero
// value is an empty backlog; its methods are safe for concurrent use.
type Backlog struct {
	pending   atomic.Int64
	lowWater  atomic.Int64
	wantDrain atomic.Bool
}

// Add counts n bytes about to be written. Count before writing: the
// library may report what the kernel took from inside the write call.
func (b *Backlog) Add(n int) { b.pending.Add(int64(n)) }

// Sent takes off n bytes the kernel took. Bytes the library wrote by itself
// (frame headers, control frames) were never added, so the count is clamped
// at zero: it can only err low, never drift high and stall a healthy
// connection. Sent reports true, once, when a backlog that Blocked reported
// has fallen to its low-water mark: the writer may resume.
func (b *Backlog) Sent(n int) bool {
	for {
		old := b.pending.Load()
		if old == 0 {
			return false
		}
		next := max(old-int64(n), 0)
		if b.pending.CompareAndSwap(old, next) {
			return next <= b.lowWater.Load() && b.wantDrain.Load() && b.wantDrain.CompareAndSwap(true, false)
		}
	}
}

// Blocked reports whether more than high bytes are waiting for the peer.
// When it reports true, a later Sent reports true once the backlog has
// fallen to low.
func (b *Backlog) Blocked(high, low int64) bool {
	if b.pending.Load() <= high {
		return false
	}
	b.lowWater.Store(low)
	b.wantDrain.Store(true)
	// The backlog may have drained between the two loads, before Sent could
	// see wantDrain: check again so the resumption is never lost.
	if b.pending.Load() <= low && b.wantDrain.CompareAndSwap(true, false) {
		return false
	}
	return true
}
