package bench

import (
	"context"
	"time"
)

// wakeProbeNap is how long the probe sleeps each time: the generator's
// publishing scheduler sleeps the same.
const wakeProbeNap = time.Millisecond

// probeWakeUps sleeps wakeProbeNap again and again until ctx ends and
// records how late each wake-up came. The generator's main process does
// little besides scheduling publications, so this is the machine's own
// scheduling delay under the load the run makes: every hop of a delivery
// (the publisher, the server reading and writing, the subscriber reading)
// can meet it, and no server can deliver faster than the wake-ups its
// messages ride on.
func probeWakeUps(ctx context.Context, h *Histogram) {
	t := time.NewTimer(wakeProbeNap)
	defer t.Stop()
	for {
		began := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.Record(time.Since(began) - wakeProbeNap)
		t.Reset(wakeProbeNap)
	}
}
