package bench

import "sync/atomic"

// seqWindow is how far behind the newest sequence number a late arrival
// can still be told apart from a duplicate.
const seqWindow = 64

// seqTracker follows the sequence numbers one subscription receives on its
// channel. It is updated by one goroutine at a time (the connection's
// poller); measured is read by others, so it is atomic.
type seqTracker struct {
	newest uint64 // highest sequence number seen
	seen   uint64 // bit i: newest-i was received, for i < seqWindow
	// measured counts distinct publications of the measured window.
	measured atomic.Uint64
}

// verdict of one arrival.
type verdict uint8

const (
	inOrder   verdict = iota // the next one, or after a gap (a loss, or a late one to come)
	late                     // older than the newest, not seen before: out of order
	duplicate                // received before
	tooOld                   // older than the window: counted as out of order
)

// observe records sequence number seq, counting it as measured when it is
// new and m is set.
func (t *seqTracker) observe(seq uint64, m bool) verdict {
	var v verdict
	switch {
	case seq > t.newest:
		shift := seq - t.newest
		if shift >= seqWindow {
			t.seen = 0
		} else {
			t.seen <<= shift
		}
		t.seen |= 1
		t.newest = seq
		v = inOrder
	case t.newest-seq >= seqWindow:
		v = tooOld
	default:
		bit := uint64(1) << (t.newest - seq)
		if t.seen&bit != 0 {
			return duplicate
		}
		t.seen |= bit
		v = late
	}
	if m {
		t.measured.Add(1)
	}
	return v
}
