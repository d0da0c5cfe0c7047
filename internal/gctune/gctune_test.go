package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name      string
		allocated uint64
		live      uint64
		want      int
	}{
		{"nothing live yet", 1 * mib, 0, 100},
		{"idle connections", 400 << 10, 50 * mib, 10},
		{"a tenth of the heap", 5 * mib, 50 * mib, 10},
		{"in between", 20 * mib, 50 * mib, 40},
		{"just under", 49 * mib, 50 * mib, 98},
		{"busy", 200 * mib, 50 * mib, 100},
	} {
		if got := Percent(c.allocated, c.live, 10, 100); got != c.want {
			t.Errorf("%s: Percent(%d B allocated, %d B live) = %d, want %d", c.name, c.allocated, c.live, got, c.want)
		}
	}
}

func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// keep is live heap standing in for idle connections' state.
var keep [][]byte

// runTuner starts a fast tuner at a starting percent of 100 over liveMiB of
// live heap, and returns what stops it; the test's cleanup stops it too, and
// puts back the percent and the heap.
func runTuner(t *testing.T, liveMiB int) (stop func()) {
	t.Helper()
	before := debug.SetGCPercent(100)
	for range liveMiB {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.GC()
	tuner := New(Config{Period: time.Second, Tick: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tuner.Run(ctx) }()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(func() {
		stop()
		keep = nil
		debug.SetGCPercent(before)
	})
	return stop
}

// The tuner brings the percent down while the process only holds memory,
// back up as soon as it allocates, and restores the starting percent when
// it stops.
func TestTunerFollowsAllocation(t *testing.T) {
	stopTuner := runTuner(t, 64)

	testkit.WaitFor(t, 10*time.Second, "the percent to reach its floor while idle", func() bool {
		return gcPercent() == 10
	})

	// 64 MiB live: allocating well over 64 MiB in a period calls for the
	// full 100.
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		for {
			select {
			case <-stop:
				return
			default:
				for range 64 {
					sink = make([]byte, 64<<10)
				}
			}
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "the percent to rise back under allocation", func() bool {
		return gcPercent() == 100
	})
	close(stop)
	churn.Wait()

	stopTuner()
	if got := gcPercent(); got != 100 {
		t.Fatalf("after the tuner stopped the percent is %d, want the starting 100", got)
	}
}

var sink []byte

func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Once a burst of allocation is over and the percent is back at its floor,
// the memory the burst used is collected and given back to the operating
// system, not left to the runtime's slow background return.
func TestQuietProcessGivesBurstMemoryBack(t *testing.T) {
	const mib = 1 << 20
	runTuner(t, 16)

	// A burst: 256 MiB held at once, as thousands of requests in flight
	// hold their buffers, then all dropped together.
	testkit.WaitFor(t, 10*time.Second, "the percent to rise under the burst", func() bool {
		burst := make([][]byte, 0, 256)
		for range 256 {
			burst = append(burst, make([]byte, mib))
		}
		sink = burst[len(burst)-1]
		return gcPercent() == 100
	})
	sink = nil
	runtime.GC()
	if free := heapFree(); free < 128*mib {
		t.Fatalf("only %d MiB free after the burst; the scenario did not happen", free/mib)
	}
	testkit.WaitFor(t, 10*time.Second, "the burst's memory to be given back", func() bool {
		return heapFree() < 32*mib
	})
}

func TestNewWithCollectorOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	if New(Config{}) != nil {
		t.Fatal("New returned a tuner with GOGC=off")
	}
}

// A starting percent below the floor stays the floor and the ceiling.
func TestLowStartingPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	tuner := New(Config{})
	tuner.step()
	if got := gcPercent(); got != 5 {
		t.Fatalf("percent %d, want 5", got)
	}
}
