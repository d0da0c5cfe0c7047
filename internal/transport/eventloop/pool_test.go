package eventloop

import (
	"context"
	"github.com/heraldrt/herald/internal/testkit"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countJob struct {
	running, peak *atomic.Int32
	release       <-chan struct{}
	done          *sync.WaitGroup
}

func (j *countJob) Run() {
	n := j.running.Add(1)
	for {
		p := j.peak.Load()
		if n <= p || j.peak.CompareAndSwap(p, n) {
			break
		}
	}
	<-j.release
	j.running.Add(-1)
	j.done.Done()
}

func TestPoolBoundsGoroutinesAndRunsEverything(t *testing.T) {
	p := NewPool(3)
	var running, peak atomic.Int32
	release := make(chan struct{})
	var done sync.WaitGroup
	const jobs = 50
	done.Add(jobs)
	for i := 0; i < jobs; i++ {
		p.Submit(&countJob{running: &running, peak: &peak, release: release, done: &done})
	}
	testkit.WaitFor(t, 5*time.Second, "three jobs to run", func() bool { return running.Load() == 3 })
	close(release)
	done.Wait()
	if got := peak.Load(); got != 3 {
		t.Fatalf("peak concurrency %d, want 3", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("pool did not go idle: %v", err)
	}
}

type funcJob func()

func (f funcJob) Run() { f() }

func TestPoolIsFIFOWhenSaturated(t *testing.T) {
	p := NewPool(1)
	gate := make(chan struct{})
	var mu sync.Mutex
	var order []int
	var done sync.WaitGroup
	done.Add(101)
	p.Submit(funcJob(func() { <-gate; done.Done() }))
	for i := 0; i < 100; i++ {
		p.Submit(funcJob(func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			done.Done()
		}))
	}
	close(gate)
	done.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("job %d ran at position %d", v, i)
		}
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
