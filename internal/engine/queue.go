package engine

import "sync"

// DeliveryQueue is the queue in front of one delivery goroutine of an
// engine: whoever receives events (a publisher, a broker connection's
// reader) pushes them, and Run hands them to the handler in push order.
// It is bounded: a push past the limit waits for the goroutine to take a
// batch, so a node that cannot keep up slows its sources instead of
// growing without bound. Call Init before use.
type DeliveryQueue[T any] struct {
	limit int
	wake  chan struct{}

	mu    sync.Mutex
	items []T
	// notFull is signalled (on mu) when Run takes a batch or stops;
	// stopped releases waiting pushers for good.
	notFull sync.Cond
	stopped bool
}

// Init prepares the queue to hold at most limit waiting events.
func (q *DeliveryQueue[T]) Init(limit int) {
	q.limit = limit
	q.wake = make(chan struct{}, 1)
	q.notFull.L = &q.mu
}

// Push queues ev. With wait it first waits while the queue is full; without
// it never waits, for events a handler sends from the delivery goroutine
// itself, which must never wait on its own queue. Events pushed after Stop
// are dropped.
func (q *DeliveryQueue[T]) Push(ev T, wait bool) {
	q.mu.Lock()
	for wait && len(q.items) >= q.limit && !q.stopped {
		q.notFull.Wait()
	}
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len is how many events wait.
func (q *DeliveryQueue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Run calls handle for every event, in push order, until stop is closed;
// events still queued then are dropped and later pushes are ignored.
func (q *DeliveryQueue[T]) Run(stop <-chan struct{}, handle func(*T)) {
	defer q.halt()
	var batch []T
	var zero T
	for {
		select {
		case <-stop:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		batch, q.items = q.items, batch[:0]
		q.notFull.Broadcast()
		q.mu.Unlock()
		for i := range batch {
			select {
			case <-stop:
				return
			default:
			}
			handle(&batch[i])
			batch[i] = zero // let what the event holds be collected
		}
	}
}

func (q *DeliveryQueue[T]) halt() {
	q.mu.Lock()
	q.stopped = true
	q.items = nil
	q.notFull.Broadcast()
	q.mu.Unlock()
}
