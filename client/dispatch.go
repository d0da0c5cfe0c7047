package client

import (
	"context"
	"sync"
)

// DefaultBufferSize is Config.BufferSize when left zero.
const DefaultBufferSize = 1024

// event is one handler call waiting in the queue.
type event struct {
	// sub, when set, is the subscription the event belongs to; the event is
	// dropped if the subscription was unsubscribed (its generation moved on)
	// after the event was queued.
	sub *Subscription
	gen uint64
	// data events (publications, joins, leaves) count against the queue's
	// limit; control events (state changes) always fit, as there are only a
	// few per connection.
	data bool
	fn   func()
}

// queue is the bounded FIFO between the goroutines that read from the server
// and the one goroutine that runs handlers. Readers never block on it
// (tryPush), except the poll loop, which has no connection to keep alive
// and simply waits for room (push).
type queue struct {
	mu    sync.Mutex
	items []event
	head  int
	data  int // data events queued
	limit int
	// wake signals the dispatcher that items were queued.
	wake chan struct{}
	// popped is closed (and replaced) when a data event is taken, if
	// someone waits for room; nil otherwise.
	popped  chan struct{}
	closed  bool
	running bool // a handler is running
	done    chan struct{}
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// tryPush queues e unless it is a data event and the queue holds limit data
// events already. A closed queue accepts and drops everything.
func (q *queue) tryPush(e event) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true
	}
	if e.data && q.data >= q.limit {
		return false
	}
	q.items = append(q.items, e)
	if e.data {
		q.data++
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// push queues e, waiting for room while the queue is full.
func (q *queue) push(ctx context.Context, e event) error {
	for !q.tryPush(e) {
		if err := q.waitBelow(ctx, q.limit-1); err != nil {
			return err
		}
	}
	return nil
}

// waitBelow waits until at most n data events are queued.
func (q *queue) waitBelow(ctx context.Context, n int) error {
	for {
		q.mu.Lock()
		if q.data <= n || q.closed {
			q.mu.Unlock()
			return nil
		}
		if q.popped == nil {
			q.popped = make(chan struct{})
		}
		ch := q.popped
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// next takes the oldest event, waiting for one; ok is false once the queue
// is closed. It marks a handler as running until finished is called.
func (q *queue) next() (e event, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return event{}, false
		}
		if q.head < len(q.items) {
			e = q.items[q.head]
			q.items[q.head] = event{} // let the closure go
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head*2 > len(q.items) {
				// Reclaim the consumed front once it dominates the slice.
				q.items = append(q.items[:0], q.items[q.head:]...)
				q.head = 0
			}
			if e.data {
				q.data--
				if q.popped != nil {
					close(q.popped)
					q.popped = nil
				}
			}
			q.running = true
			q.mu.Unlock()
			return e, true
		}
		q.mu.Unlock()
		<-q.wake
	}
}

func (q *queue) finished() {
	q.mu.Lock()
	q.running = false
	q.mu.Unlock()
}

// close stops the dispatcher: queued events are dropped, and the handler
// running now, if any, is the last. It reports whether a handler was
// running, in which case the caller must not wait for the dispatcher (the
// caller may be that very handler).
func (q *queue) close() (running bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.running
	}
	q.closed = true
	q.items, q.head, q.data = nil, 0, 0
	if q.popped != nil {
		close(q.popped)
		q.popped = nil
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return q.running
}

// dispatch runs handlers one at a time, in queue order, until the queue is
// closed. It is the only goroutine that calls user code.
func (q *queue) dispatch() {
	defer close(q.done)
	for {
		e, ok := q.next()
		if !ok {
			return
		}
		if e.sub == nil || e.sub.gen.Load() == e.gen {
			e.fn()
		}
		q.finished()
	}
}
