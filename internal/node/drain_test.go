package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// stamped is a Transport that records when its session was told to
// disconnect, and finishes the session then, as a real transport would.
type stamped struct {
	s    *Session
	mu   sync.Mutex
	at   time.Time
	disc *protocol.Disconnect
}

func (p *stamped) Name() string { return "stamped" }

func (p *stamped) Wake() {
	// Wake runs with the session's lock held; Drain and Finish take it.
	go func() {
		_, d := p.s.Drain(nil)
		if d == nil {
			return
		}
		p.mu.Lock()
		if p.disc == nil {
			p.at, p.disc = time.Now(), d
		}
		p.mu.Unlock()
		p.s.Finish()
	}()
}

func startDrainNode(t *testing.T, spread time.Duration) *Node {
	t.Helper()
	n, err := New(Config{Engine: memory.New(memory.Config{}), Dev: true, AllowAnonymous: true, DrainSpread: spread})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func openStamped(t *testing.T, n *Node, count int) []*stamped {
	t.Helper()
	out := make([]*stamped, count)
	for i := range out {
		p := &stamped{}
		s, err := n.NewSession(p, SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.s = s
		out[i] = p
	}
	return out
}

func TestDrainSpreadsDisconnectsOverTheWindow(t *testing.T) {
	const spread = 600 * time.Millisecond
	n := startDrainNode(t, spread)
	// Enough sessions that maxDrainGap does not shrink the window.
	sessions := openStamped(t, n, int(spread/maxDrainGap))
	polled := make(chan time.Time, 1)
	go func() {
		_, err := n.Poll(context.Background(), Credentials{}, PollRequest{Channels: []string{"p"}, Timeout: time.Minute})
		if err != nil {
			t.Error(err)
		}
		polled <- time.Now()
	}()
	testkit.WaitFor(t, 10*time.Second, "the long poll to wait", func() bool { return len(n.polls.all()) == 1 })

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	first, last := time.Time{}, time.Time{}
	for _, p := range sessions {
		p.mu.Lock()
		at, d := p.at, p.disc
		p.mu.Unlock()
		if d == nil || *d != protocol.DisconnectShutdown {
			t.Fatalf("session told %v, want %v", d, protocol.DisconnectShutdown)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if span := last.Sub(first); span < spread/2 {
		t.Fatalf("disconnects spanned %v of a %v window: not spread", span, spread)
	}
	if took := last.Sub(began); took > spread+500*time.Millisecond {
		t.Fatalf("last disconnect %v after the drain began, window %v", took, spread)
	}
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll was not answered by the drain")
	}
}

func TestDrainTellsTheRestAtOnceWhenTimeRunsOut(t *testing.T) {
	n := startDrainNode(t, time.Hour)
	sessions := openStamped(t, n, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_ = n.Shutdown(ctx) // may report sessions still open at the deadline
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("shutdown took %v with a 200ms deadline", took)
	}
	for _, p := range sessions {
		testkit.WaitFor(t, 10*time.Second, "every session to be told", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.disc != nil
		})
	}
}

// Sessions not yet told to reconnect are still served while the node
// drains: publishing works until the engine closes.
func TestPublishWorksUntilTheEngineCloses(t *testing.T) {
	n := startDrainNode(t, time.Second)
	openStamped(t, n, int(time.Second/maxDrainGap))
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- n.Shutdown(ctx)
	}()
	testkit.WaitFor(t, 5*time.Second, "the drain to begin", n.Draining)
	req := protocol.PublishRequest{Channel: "c", Data: []byte(`1`)}
	if _, err := n.Publish(context.Background(), req); err != nil {
		t.Fatalf("publish while draining: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(context.Background(), req); err != protocol.ErrShuttingDown {
		t.Fatalf("publish after shutdown: %v, want %v", err, protocol.ErrShuttingDown)
	}
}
