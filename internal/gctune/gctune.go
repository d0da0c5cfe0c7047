// Package gctune keeps the garbage collector's headroom small while a
// process allocates little next to what it keeps alive.
//
// Go's collector lets the heap grow by GOGC percent of the live heap (100
// by default) before it collects, and the runtime keeps that headroom
// resident. A server holding many idle connections has a large live heap
// and allocates almost nothing, so at GOGC=100 half of its memory is
// headroom it never needs, and its collector runs perhaps once a minute.
// The tuner instead sizes the headroom to what the process allocated over
// the last Period, between MinPercent and the process's starting GOGC.
// Where GOGC alone would collect less often than once per Period, the
// collector then runs about once per Period (less often at the floor);
// where allocation is heavier it runs as GOGC has it, from the first Tick
// whose window calls for it. So the tuner costs at most about one mark of
// the live heap per Period.
//
// When the process goes quiet after allocating (the percent falls to its
// floor), the tuner also collects and returns the free heap to the operating
// system at once, at most once per Period: one more mark of the live heap
// per Period at worst, only when the process alternates between busy and
// quiet. A burst leaves hundreds of megabytes free, and the runtime's own
// scavenger gives them back slowly (64 MB in 25 s, measured after 19,000
// long polls reopened together), so the process stayed as large as its
// busiest moment long after it.
package gctune

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config shapes a Tuner. The zero value tunes between 10 and the starting
// GOGC, aiming for a collection every 10 s, checking 4 times a second.
type Config struct {
	// Period is the longest the tuner lets the heap's headroom last at the
	// current allocation rate.
	Period time.Duration
	// MinPercent is the lowest GC percent the tuner sets.
	MinPercent int
	// Tick is how often the allocation rate is read. A burst of allocation
	// runs at the low percent for at most one Tick.
	Tick time.Duration
}

// Tuner adjusts the process's GC percent. Only one should run per process:
// the percent is process-wide.
type Tuner struct {
	cfg Config
	// max is the percent the process started with (GOGC), the ceiling.
	max     int
	current int
	samples []metrics.Sample
	// window holds the bytes allocated in each of the last Period/Tick
	// ticks, a ring starting at next; inWindow is their sum.
	window    []uint64
	next      int
	inWindow  uint64
	allocated uint64
	// released is when the tuner last returned the free heap.
	released time.Time
}

// New returns a tuner whose ceiling is the process's current GC percent. It
// returns nil when the collector is off (GOGC=off): there is nothing to tune.
func New(cfg Config) *Tuner {
	if cfg.Period <= 0 {
		cfg.Period = 10 * time.Second
	}
	if cfg.MinPercent <= 0 {
		cfg.MinPercent = 10
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	t := &Tuner{samples: []metrics.Sample{
		{Name: "/gc/gogc:percent"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	metrics.Read(t.samples)
	t.max = int(t.samples[0].Value.Uint64())
	if t.max <= 0 {
		return nil
	}
	t.current = t.max
	cfg.MinPercent = min(cfg.MinPercent, t.max)
	t.cfg = cfg
	t.window = make([]uint64, max(1, int(cfg.Period/cfg.Tick)))
	t.allocated = t.samples[1].Value.Uint64()
	return t
}

// Run tunes until ctx ends, then restores the starting percent.
func (t *Tuner) Run(ctx context.Context) {
	defer debug.SetGCPercent(t.max)
	tick := time.NewTicker(t.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.step()
		}
	}
}

// step adds the bytes allocated since the last step to the window and sets
// the percent they call for.
func (t *Tuner) step() {
	metrics.Read(t.samples)
	allocated := t.samples[1].Value.Uint64()
	live := t.samples[2].Value.Uint64()
	delta := allocated - t.allocated
	t.allocated = allocated
	t.inWindow += delta - t.window[t.next]
	t.window[t.next] = delta
	t.next = (t.next + 1) % len(t.window)
	if want := Percent(t.inWindow, live, t.cfg.MinPercent, t.max); want != t.current {
		debug.SetGCPercent(want)
		quiet := want == t.cfg.MinPercent && want < t.current
		t.current = want
		if quiet && time.Since(t.released) >= t.cfg.Period {
			// A collection first: the live heap the percent was sized to
			// is the busy moment's, and its garbage would otherwise wait
			// for the heap to grow past it again.
			debug.FreeOSMemory()
			t.released = time.Now()
		}
	}
}

// Percent is the GC percent whose headroom over a live heap of live bytes
// is the allocated bytes, within [lo, hi].
func Percent(allocated, live uint64, lo, hi int) int {
	if live == 0 {
		return hi
	}
	p := math.Ceil(100 * float64(allocated) / float64(live))
	switch {
	case p >= float64(hi):
		return hi
	case p <= float64(lo):
		return lo
	}
	return int(p)
}
