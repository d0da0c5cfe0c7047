// Package webhook sends the node's events (connects, subscribes, publishes,
// presence…) to HTTP endpoints: HMAC-signed JSON batches, delivered at least
// once, in order, from a durable outbox, with retries and backoff. It is the
// node's EventSink.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// Webhooks queues the node's events in the outbox and delivers them to every
// endpoint. Create it with New, call Start, and stop it with Shutdown after
// the node has shut down, so the last disconnects are queued too.
type Webhooks struct {
	cfg       Config
	outbox    *outbox
	endpoints []*endpoint
	// wants is the union of the endpoints' event types, checked first.
	wants node.EventType
	in    chan node.Event
	// gap counts events refused since the last overflow event written;
	// dropped counts every refused event.
	gap, dropped atomic.Uint64
	closed       atomic.Bool
	client       *http.Client

	stop      chan struct{}      // closed by Shutdown: write what is buffered, then finish
	written   chan struct{}      // closed when the writer has returned
	cancel    context.CancelFunc // set by Start
	wg        sync.WaitGroup
	startOnce sync.Once
	shutOnce  sync.Once
	shutErr   error
}

var _ node.EventSink = (*Webhooks)(nil)

// Stats are the webhooks' counters since start.
type Stats struct {
	// Depth is the number of events held in the outbox, delivered to some
	// endpoints but not yet to all, or to none.
	Depth int
	// Delivered counts events acknowledged by an endpoint (one event to two
	// endpoints counts two); FailedAttempts, requests that failed and will
	// be retried; Dropped, events refused: the outbox or the buffer in
	// front of it was full, a write failed, or Shutdown had begun.
	Delivered, FailedAttempts, Dropped uint64
}

// New validates cfg and opens the outbox; nothing is sent before Start.
func New(cfg Config) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cfg.setDefaults()
	ob, err := openOutbox(cfg.Dir, cfg.MaxEvents, cfg.MaxBytes, cfg.Logger)
	if err != nil {
		return nil, err
	}
	w := &Webhooks{
		cfg:     cfg,
		outbox:  ob,
		in:      make(chan node.Event, cfg.Buffer),
		stop:    make(chan struct{}),
		written: make(chan struct{}),
		client: &http.Client{
			Timeout:   cfg.Timeout,
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect would turn the POST into a GET: it is a failure
			// to fix in the configuration, not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	keep := make(map[string]bool)
	for _, e := range cfg.Endpoints {
		f, _ := e.filter() // Validate checked it
		ep, err := newEndpoint(w, e, f)
		if err != nil {
			return nil, errors.Join(err, ob.close())
		}
		w.endpoints = append(w.endpoints, ep)
		w.wants |= f.types
		keep[e.URL] = true
	}
	if err := ob.forget(keep); err != nil {
		return nil, errors.Join(fmt.Errorf("webhook: outbox: %w", err), ob.close())
	}
	return w, nil
}

// Wants reports whether some endpoint takes events of type t on channel.
func (w *Webhooks) Wants(t node.EventType, channel string) bool {
	if w.wants&t == 0 {
		return false
	}
	for _, ep := range w.endpoints {
		if ep.filter.match(t, channel) {
			return true
		}
	}
	return false
}

// Emit queues ev for the outbox without blocking. When the buffer is full,
// or after Shutdown, the event is refused and counted as dropped.
func (w *Webhooks) Emit(ev node.Event) {
	if w.closed.Load() {
		w.refuse(1)
		return
	}
	select {
	case w.in <- ev:
	default:
		w.refuse(1)
	}
}

func (w *Webhooks) refuse(n uint64) {
	w.gap.Add(n)
	w.dropped.Add(n)
}

// Start starts the outbox writer and one delivery loop per endpoint.
func (w *Webhooks) Start() {
	w.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		w.wg.Add(1 + len(w.endpoints))
		go w.writeLoop()
		for _, ep := range w.endpoints {
			go ep.run(ctx)
		}
	})
}

// Shutdown writes the buffered events to the outbox, lets each endpoint
// send what it holds until it is caught up, fails once, or ctx ends, then
// closes the outbox. What is left stays in a durable outbox for the next
// start.
func (w *Webhooks) Shutdown(ctx context.Context) error {
	w.shutOnce.Do(func() {
		w.startOnce.Do(func() {}) // a later Start does nothing
		w.closed.Store(true)
		close(w.stop)
		if w.cancel != nil {
			done := make(chan struct{})
			go func() { w.wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				w.cancel()
				<-done
			}
			w.cancel()
		}
		w.client.CloseIdleConnections()
		w.shutErr = w.outbox.close()
	})
	return w.shutErr
}

// Stats reads the counters.
func (w *Webhooks) Stats() Stats {
	st := Stats{Depth: w.outbox.depth(), Dropped: w.dropped.Load()}
	for _, ep := range w.endpoints {
		st.Delivered += ep.delivered.Load()
		st.FailedAttempts += ep.failed.Load()
	}
	return st
}

// writeBatch bounds the events of one outbox write.
const writeBatch = 512

// writeLoop moves events from the buffer to the outbox, many per synced
// write, until Shutdown; then it writes what is left and returns.
func (w *Webhooks) writeLoop() {
	defer w.wg.Done()
	defer close(w.written)
	batch := make([]node.Event, 0, writeBatch)
	for {
		select {
		case ev := <-w.in:
			batch = append(batch[:0], ev)
		case <-w.stop:
			for {
				batch = batch[:0]
				w.drain(&batch)
				if len(batch) == 0 {
					return
				}
				w.write(batch)
			}
		}
		w.drain(&batch)
		w.write(batch)
	}
}

// drain appends buffered events to batch without waiting, up to writeBatch.
func (w *Webhooks) drain(batch *[]node.Event) {
	for len(*batch) < writeBatch {
		select {
		case ev := <-w.in:
			*batch = append(*batch, ev)
		default:
			return
		}
	}
}

// write appends events to the outbox in one synced write, first an overflow
// event if some were refused since the last one. Events beyond the bounds
// are refused, and so is every event while the overflow event itself does
// not fit: no event may pass a gap silently, and the bounds hold for
// overflow events too.
func (w *Webhooks) write(events []node.Event) {
	b := w.outbox.begin()
	id := w.outbox.id
	// unreported is the gap not yet written as an overflow event; gap, the
	// part written in this batch.
	var refused, gap, unreported uint64
	for i := range events {
		if unreported += w.gap.Swap(0); unreported > 0 {
			v := encodeOverflow(id, b.seq, unreported, time.Now())
			if !b.fits(len(v)) {
				refused++
				continue
			}
			b.put(v)
			gap += unreported
			unreported = 0
		}
		v := encodeEntry(id, b.seq, &events[i])
		if !b.fits(len(v)) {
			refused++
			continue
		}
		b.put(v)
	}
	w.gap.Add(unreported)
	if refused > 0 {
		w.refuse(refused)
		w.cfg.Logger.Warn("webhook outbox full: events refused", "refused", refused, "max_events", w.cfg.MaxEvents, "max_bytes", w.cfg.MaxBytes)
	}
	if err := b.commit(); err != nil {
		w.gap.Add(gap)
		w.refuse(uint64(len(events)) - refused)
		w.cfg.Logger.Error("webhook outbox write failed: events refused", "refused", len(events), "err", err)
		return
	}
	for _, ep := range w.endpoints {
		ep.wake()
	}
}
