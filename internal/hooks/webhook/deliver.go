package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// endpoint delivers the outbox to one URL: one batch in flight at a time,
// in outbox order, the same batch retried until the endpoint acknowledges
// it with a 2xx.
type endpoint struct {
	w      *Webhooks
	url    string
	secret []byte
	filter filter
	// cursor is the next sequence the endpoint has not acknowledged; only
	// its own loop writes it, the other endpoints' loops read it to trim.
	cursor atomic.Uint64
	wakeCh chan struct{}

	delivered, failed atomic.Uint64
}

func newEndpoint(w *Webhooks, e Endpoint, f filter) (*endpoint, error) {
	c, err := w.outbox.cursor(e.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook: outbox: %w", err)
	}
	ep := &endpoint{w: w, url: e.URL, secret: []byte(e.Secret), filter: f, wakeCh: make(chan struct{}, 1)}
	ep.cursor.Store(c)
	return ep, nil
}

// wake tells the loop that the outbox has new entries.
func (ep *endpoint) wake() {
	select {
	case ep.wakeCh <- struct{}{}:
	default:
	}
}

// keep is the endpoint's filter on stored entries.
func (ep *endpoint) keep(v []byte) bool {
	bit, channel, _, ok := decodeHead(v)
	if !ok {
		return false
	}
	return bit == overflowBit || ep.filter.match(node.EventType(bit), channel)
}

// pending is a batch read from the outbox and not yet acknowledged.
type pending struct {
	body  []byte
	count int
	// next is the cursor once the batch is acknowledged.
	next uint64
}

// run delivers until ctx ends, or, once Shutdown began, until the endpoint
// is caught up or an attempt fails.
func (ep *endpoint) run(ctx context.Context) {
	defer ep.w.wg.Done()
	cfg := &ep.w.cfg
	var p *pending
	failures := 0
	for ctx.Err() == nil {
		stopping := isClosed(ep.w.stop)
		if p == nil {
			if stopping {
				// Everything Shutdown buffered must be in the outbox
				// before "caught up" means anything.
				<-ep.w.written
			}
			var err error
			if p, err = ep.next(); err != nil {
				cfg.Logger.Error("webhook outbox read failed", "url", ep.url, "err", err)
				return
			}
		}
		if p == nil {
			if stopping {
				return
			}
			select {
			case <-ep.wakeCh:
			case <-ep.w.stop:
			case <-ctx.Done():
				return
			}
			// Let a burst gather into one batch.
			if !sleep(ctx, ep.w.stop, cfg.FlushInterval) {
				return
			}
			continue
		}
		if err := ep.post(ctx, p); err != nil {
			ep.failed.Add(1)
			failures++
			cfg.Logger.Warn("webhook delivery failed; will retry", "url", ep.url, "events", p.count, "attempt", failures, "err", err)
			if stopping || !sleep(ctx, ep.w.stop, backoff(cfg.RetryMin, cfg.RetryMax, failures)) {
				return
			}
			continue
		}
		failures = 0
		ep.delivered.Add(uint64(p.count))
		ep.advance(p.next)
		p = nil
	}
}

// next reads the endpoint's next batch, or nil when it is caught up.
// Entries its filter skips advance the cursor.
func (ep *endpoint) next() (*pending, error) {
	cfg := &ep.w.cfg
	cursor := ep.cursor.Load()
	entries, after, err := ep.w.outbox.read(cursor, cfg.BatchSize, cfg.BatchBytes, ep.keep)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		if after > cursor {
			ep.advance(after)
		}
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		_, _, body, _ := decodeHead(e.value)
		b.Write(body)
	}
	b.WriteString("]}")
	return &pending{body: b.Bytes(), count: len(entries), next: after}, nil
}

// advance records the endpoint's progress and trims what every endpoint has.
func (ep *endpoint) advance(next uint64) {
	ep.cursor.Store(next)
	if err := ep.w.outbox.setCursor(ep.url, next); err != nil {
		ep.w.cfg.Logger.Warn("webhook cursor not saved; events may be sent again", "url", ep.url, "err", err)
	}
	low := next
	for _, other := range ep.w.endpoints {
		low = min(low, other.cursor.Load())
	}
	if err := ep.w.outbox.trim(low); err != nil {
		ep.w.cfg.Logger.Warn("webhook outbox trim failed", "err", err)
	}
}

// post sends one batch; any answer but a 2xx is a failure.
func (ep *endpoint) post(ctx context.Context, p *pending) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald-webhook")
	req.Header.Set(CountHeader, strconv.Itoa(p.count))
	req.Header.Set(SignatureHeader, Sign(ep.secret, time.Now(), p.body))
	resp, err := ep.w.client.Do(req)
	if err != nil {
		return err
	}
	// Reading a little of the body lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// backoff is the wait before retry number n (from 1): a random duration
// below min·2^(n-1), capped at max (exponential backoff, full jitter).
func backoff(lo, hi time.Duration, n int) time.Duration {
	ceiling := hi
	if n < 32 && lo<<(n-1) < hi && lo<<(n-1) > 0 {
		ceiling = lo << (n - 1)
	}
	return rand.N(ceiling) + 1
}

// sleep waits d; it returns false when ctx ends first. stop cuts the wait
// short too, but returns true: the caller then finishes its work.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return true
	case <-ctx.Done():
		return false
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
