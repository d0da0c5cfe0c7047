package memory

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// gatedHandler holds every publication until its gate opens, as a fan-out
// that cannot keep up would, and records offsets in delivery order.
type gatedHandler struct {
	gate chan struct{}
	mu   sync.Mutex
	got  []uint64
}

func (h *gatedHandler) HandlePublication(pub *protocol.Publication, _ string) {
	<-h.gate
	h.mu.Lock()
	h.got = append(h.got, pub.Offset)
	h.mu.Unlock()
}
func (h *gatedHandler) HandleJoin(string, protocol.ClientInfo)  {}
func (h *gatedHandler) HandleLeave(string, protocol.ClientInfo) {}
func (h *gatedHandler) HandleControl([]byte)                    {}

func (h *gatedHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// Publishing faster than deliveries drain must hold the queue at its bound
// and make publishers wait, then deliver everything in order once the
// handler catches up.
func TestDeliveryQueueIsBounded(t *testing.T) {
	e := New(Config{})
	defer e.Close(context.Background())
	h := &gatedHandler{gate: make(chan struct{})}
	ctx := context.Background()
	if err := e.Start(ctx, "n1", h); err != nil {
		t.Fatal(err)
	}
	const channel = "flood"
	if err := e.Subscribe(ctx, channel); err != nil {
		t.Fatal(err)
	}
	total := 2 * maxQueuedEvents
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range total {
			if _, err := e.Publish(ctx, channel, []byte(`1`), engine.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	s := e.delivery.shard(channel)
	queued := s.queue.Len
	testkit.WaitFor(t, 10*time.Second, "the queue to fill", func() bool { return queued() >= maxQueuedEvents })
	// Had the publisher not been made to wait, it would have queued all of
	// its publications by now.
	select {
	case <-done:
		t.Fatal("every publish returned while the handler was stalled")
	default:
	}
	if n := queued(); n > maxQueuedEvents {
		t.Fatalf("queue holds %d events, bound is %d", n, maxQueuedEvents)
	}
	close(h.gate)
	<-done
	testkit.WaitFor(t, 10*time.Second, "every delivery", func() bool { return h.count() == total })
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, off := range h.got {
		if off != uint64(i+1) {
			t.Fatalf("delivery %d has offset %d", i, off)
		}
	}
}

// Close releases a publisher waiting for room in a full queue.
func TestCloseReleasesWaitingPublishers(t *testing.T) {
	e := New(Config{})
	h := &gatedHandler{gate: make(chan struct{})}
	ctx := context.Background()
	if err := e.Start(ctx, "n1", h); err != nil {
		t.Fatal(err)
	}
	if err := e.Subscribe(ctx, "flood"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 * maxQueuedEvents {
			if _, err := e.Publish(ctx, "flood", []byte(`1`), engine.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}); err != nil {
				return
			}
		}
	}()
	s := e.delivery.shard("flood")
	testkit.WaitFor(t, 10*time.Second, "the queue to fill", func() bool { return s.queue.Len() >= maxQueuedEvents })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = e.Close(ctx)
	}()
	// Let the stalled delivery return so Close can finish; the delivery
	// goroutine then stops without draining, and only Close's release frees
	// the publisher still waiting for room.
	close(h.gate)
	<-closed
	testkit.WaitFor(t, 10*time.Second, "the waiting publisher to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}
