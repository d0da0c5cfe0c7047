package eventloop

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

// Turns never overlap, and a Schedule during a turn is never lost: after
// the last Schedule, a turn starts that sees everything scheduled before it.
func TestSerialNeverOverlapsAndLosesNoWake(t *testing.T) {
	pool := NewPool(8)
	var s Serial
	var running, overlaps atomic.Int32
	var mu sync.Mutex
	seen, produced := 0, 0
	s.Init(pool, func() {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		mu.Lock()
		seen = produced
		mu.Unlock()
		running.Add(-1)
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				mu.Lock()
				produced++
				mu.Unlock()
				s.Schedule()
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, 5*time.Second, "a turn to see the last wake", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen == produced
	})
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping turns", n)
	}
}

// A Serial woken all along yields its worker, so another one gets a turn
// on a pool of one.
func TestSerialYieldsToOthers(t *testing.T) {
	pool := NewPool(1)
	var busy, other Serial
	var otherRan atomic.Bool
	busy.Init(pool, func() {
		if !otherRan.Load() {
			busy.Schedule() // always due again
		}
	})
	other.Init(pool, func() { otherRan.Store(true) })
	busy.Schedule()
	other.Schedule()
	testkit.WaitFor(t, 5*time.Second, "the other serial's turn", otherRan.Load)
}
