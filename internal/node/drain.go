package node

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// maxDrainGap caps the pause between two clients told to reconnect: a few
// clients make no wave worth spreading, and should not hold a node's
// shutdown for the whole window.
const maxDrainGap = 10 * time.Millisecond

// drainTick is the granularity of a spread drain: closes due within one tick
// go out together, so draining many sessions costs a timer per tick, not per
// session.
const drainTick = 10 * time.Millisecond

// drain tells every session to reconnect (DisconnectShutdown) and answers
// every waiting long poll, spreading them evenly over spread in a random
// order, so that the clients reconnecting to the remaining nodes arrive as a
// steady stream instead of one wave. The window shrinks to maxDrainGap per
// client for few clients. When ctx ends first, the rest are told
// at once. A spread of zero tells everyone at once.
func (n *Node) drain(ctx context.Context, spread time.Duration) {
	var tell []func()
	for _, s := range n.sessions.all() {
		tell = append(tell, func() { s.Close(protocol.DisconnectShutdown) })
	}
	for _, pw := range n.polls.all() {
		tell = append(tell, pw.w.notify)
	}
	rand.Shuffle(len(tell), func(i, j int) { tell[i], tell[j] = tell[j], tell[i] })
	spread = min(spread, time.Duration(len(tell))*maxDrainGap)
	if spread <= 0 || len(tell) < 2 {
		for _, f := range tell {
			f()
		}
		return
	}
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	done := 0
	for done < len(tell) {
		// The i-th of k is due at spread·i/k: the last goes out before the
		// window ends, leaving the whole window to the reconnects.
		due := min(len(tell), int(int64(time.Since(start))*int64(len(tell))/int64(spread))+1)
		for ; done < due; done++ {
			tell[done]()
		}
		if done == len(tell) {
			return
		}
		next := start.Add(time.Duration(int64(spread) * int64(done) / int64(len(tell))))
		t.Reset(max(time.Until(next), drainTick))
		select {
		case <-t.C:
		case <-ctx.Done():
			for _, f := range tell[done:] {
				f()
			}
			return
		}
	}
}
