package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// countingEngine is a memory engine that counts the node's engine
// subscriptions per channel.
type countingEngine struct {
	engine.Engine
	mu     sync.Mutex
	subs   map[string]int
	unsubs map[string]int
}

func newCountingEngine() *countingEngine {
	return &countingEngine{Engine: memory.New(memory.Config{}), subs: map[string]int{}, unsubs: map[string]int{}}
}

func (e *countingEngine) Subscribe(ctx context.Context, channel string) error {
	e.mu.Lock()
	e.subs[channel]++
	e.mu.Unlock()
	return e.Engine.Subscribe(ctx, channel)
}

func (e *countingEngine) Unsubscribe(ctx context.Context, channel string) error {
	e.mu.Lock()
	e.unsubs[channel]++
	e.mu.Unlock()
	return e.Engine.Unsubscribe(ctx, channel)
}

// counts returns how often the node subscribed to and unsubscribed from channel.
func (e *countingEngine) counts(channel string) (subs, unsubs int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.subs[channel], e.unsubs[channel]
}

// TestOneEngineSubscriptionPerChannel subscribes 100 sessions to one
// channel at once: the node must hold one engine subscription for all of
// them, drop it only when the last one leaves, and never subscribe to a
// channel that only sees publishes and history reads.
func TestOneEngineSubscriptionPerChannel(t *testing.T) {
	ce := newCountingEngine()
	n := newTestNode(t, Config{Engine: ce})
	ctx := context.Background()
	const channel, quiet, sessions = "room:hot", "room:quiet", 100

	pipes := make([]*pipe, sessions)
	for i := range pipes {
		pipes[i] = openSession(t, n, SessionOptions{})
	}
	var wg sync.WaitGroup
	for _, p := range pipes {
		wg.Go(func() {
			if err := p.s.SubscribeStream(ctx, []string{channel}, nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if subs, unsubs := ce.counts(channel); subs != 1 || unsubs != 0 {
		t.Fatalf("%d sessions on %s: %d engine subscribes and %d unsubscribes, want 1 and 0", sessions, channel, subs, unsubs)
	}

	// The one engine subscription feeds every session.
	off := publish(t, n, channel, 1).Offset
	for i, p := range pipes {
		testkit.WaitFor(t, 10*time.Second, "the publication on every session", func() bool {
			offs := publicationOffsets(p.items(), channel)
			return len(offs) == 1 && offs[0] == off
		})
		if d := p.disconnect(); d != nil {
			t.Fatalf("session %d disconnected: %+v", i, d)
		}
	}

	// Nobody listens to quiet: publishing to it and reading its history
	// must not subscribe the node.
	publish(t, n, quiet, 1)
	if _, err := n.History(ctx, protocol.HistoryRequest{Channel: quiet}); err != nil {
		t.Fatal(err)
	}
	if subs, unsubs := ce.counts(quiet); subs != 0 || unsubs != 0 {
		t.Fatalf("%s without listeners: %d engine subscribes and %d unsubscribes, want none", quiet, subs, unsubs)
	}

	// Half leave by unsubscribing, all but one of the rest by closing.
	for _, p := range pipes[:sessions/2] {
		wg.Go(func() {
			if err := p.s.Unsubscribe(ctx, channel); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, p := range pipes[sessions/2 : sessions-1] {
		p.s.Close(protocol.DisconnectForced)
		<-p.done
	}
	testkit.WaitFor(t, 10*time.Second, "one local subscriber left", func() bool { return n.Channels()[channel] == 1 })
	if subs, unsubs := ce.counts(channel); subs != 1 || unsubs != 0 {
		t.Fatalf("one session left: %d engine subscribes and %d unsubscribes, want 1 and 0", subs, unsubs)
	}

	last := pipes[sessions-1]
	last.s.Close(protocol.DisconnectForced)
	<-last.done
	testkit.WaitFor(t, 10*time.Second, "the channel to leave the hub", func() bool { return len(n.Channels()) == 0 })
	if subs, unsubs := ce.counts(channel); subs != 1 || unsubs != 1 {
		t.Fatalf("after the last session left: %d engine subscribes and %d unsubscribes, want 1 and 1", subs, unsubs)
	}

	// A newcomer subscribes the node again.
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{channel}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if subs, _ := ce.counts(channel); subs != 2 {
		t.Fatalf("a newcomer after the channel emptied: %d engine subscribes in all, want 2", subs)
	}
}

// someChannels visits every channel once when never stopped, and stops as
// soon as told.
func TestHubSomeChannels(t *testing.T) {
	n := newTestNode(t, Config{})
	p := openSession(t, n, SessionOptions{})
	want := []string{"some:a", "some:b", "some:c", "some:d", "some:e"}
	if err := p.s.SubscribeStream(context.Background(), want, nil, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	n.hub.someChannels(func(ch string) bool { seen[ch]++; return true })
	if len(seen) != len(want) {
		t.Fatalf("visited %v, want each of %v", seen, want)
	}
	for _, ch := range want {
		if seen[ch] != 1 {
			t.Fatalf("visited %s %d times", ch, seen[ch])
		}
	}
	calls := 0
	n.hub.someChannels(func(string) bool { calls++; return calls < 2 })
	if calls != 2 {
		t.Fatalf("%d calls after asking to stop at the second", calls)
	}
}
