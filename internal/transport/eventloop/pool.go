package eventloop

import (
	"context"
	"sync"
)

// Job is one unit of work for a Pool. Connections submit themselves (through
// small named pointer types) rather than closures, so scheduling allocates
// nothing.
type Job interface{ Run() }

// Pool runs jobs on at most max goroutines. Goroutines start on demand and
// exit as soon as the queue is empty, so an idle server holds none.
//
// The queue has no fixed bound, but every submitter keeps at most one job of
// each kind queued or running per connection, so its length is bounded by
// the number of connections.
type Pool struct {
	max int

	mu      sync.Mutex
	queue   []Job // FIFO ring: queue[head : head+n] (mod len)
	head, n int
	running int
	idle    chan struct{} // closed and cleared when running drops to zero
}

// NewPool returns a pool of at most max goroutines.
func NewPool(max int) *Pool { return &Pool{max: max} }

// Submit queues j, starting a goroutine for it if fewer than max are
// running. It never blocks, so it is safe under any lock.
func (p *Pool) Submit(j Job) {
	p.mu.Lock()
	if p.running < p.max {
		p.running++
		p.mu.Unlock()
		go p.work(j)
		return
	}
	if p.n == len(p.queue) {
		p.grow()
	}
	p.queue[(p.head+p.n)%len(p.queue)] = j
	p.n++
	p.mu.Unlock()
}

// grow doubles the ring. Caller must hold p.mu.
func (p *Pool) grow() {
	size := 2 * len(p.queue)
	if size == 0 {
		size = 64
	}
	q := make([]Job, size)
	for i := 0; i < p.n; i++ {
		q[i] = p.queue[(p.head+i)%len(p.queue)]
	}
	p.queue, p.head = q, 0
}

func (p *Pool) work(j Job) {
	for {
		j.Run()
		p.mu.Lock()
		if p.n == 0 {
			p.running--
			// A burst can leave a large ring behind; do not keep it while idle.
			if len(p.queue) > 1024 {
				p.queue, p.head = nil, 0
			}
			if p.running == 0 && p.idle != nil {
				close(p.idle)
				p.idle = nil
			}
			p.mu.Unlock()
			return
		}
		j = p.queue[p.head]
		p.queue[p.head] = nil
		p.head = (p.head + 1) % len(p.queue)
		p.n--
		p.mu.Unlock()
	}
}

// Wait blocks until no goroutine of the pool is running or ctx ends.
func (p *Pool) Wait(ctx context.Context) error {
	p.mu.Lock()
	if p.running == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	ch := p.idle
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
