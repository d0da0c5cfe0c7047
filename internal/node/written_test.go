package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// A write of live publications reports its frames and the age of the
// oldest one; a write of anything else (here a ping) reports no latency,
// and a write reported twice is timed once.
func TestWroteReportsDeliveryLatency(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs})
	ctx := context.Background()
	tr := &pipe{wake: make(chan struct{}, 1)}
	s, err := n.NewSession(tr, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finish()
	if err := s.SubscribeStream(ctx, []string{"wrote:a"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	items := drainUntil(t, s, func(got []Item) bool { return len(got) > 0 })
	s.Wrote(len(items), 0) // the subscribed item: no publication to time
	began := time.Now()
	publish(t, n, "wrote:a", 0)
	publish(t, n, "wrote:a", 1)
	items = drainUntil(t, s, func(got []Item) bool { return len(publicationOffsets(got, "wrote:a")) == 2 })
	s.Wrote(len(items), 0)
	s.Wrote(1, 0)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.flushes) != 3 {
		t.Fatalf("%d writes reported, want 3", len(obs.flushes))
	}
	if f := obs.flushes[0]; f.latency >= 0 {
		t.Errorf("a write without publications reported latency %v", f.latency)
	}
	// The publication time has millisecond resolution.
	if f := obs.flushes[1]; f.frames != len(items) || f.latency < 0 || f.latency > time.Since(began)+time.Millisecond {
		t.Errorf("write of 2 publications reported %d frames, latency %v (at most %v)", f.frames, f.latency, time.Since(began))
	}
	if f := obs.flushes[2]; f.latency >= 0 {
		t.Errorf("the same publications timed twice: %v", f.latency)
	}
}

// A slow consumer's discarded queue is counted as dropped; so are the
// latest-only publications a transport skipped.
func TestObserverHearsDrops(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs, MaxQueueBytes: 4 << 10})
	ctx := context.Background()
	s, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finish()
	if err := s.SubscribeStream(ctx, []string{"drops:a"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; s.Closing() == nil; i++ {
		if i == 1000 {
			t.Fatal("a 4 KiB queue took 1000 publications without overflowing")
		}
		publish(t, n, "drops:a", i)
		waitQueued(t, s, i)
	}
	s.Wrote(0, 2)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.dropped[DropSlowConsumer] == 0 {
		t.Errorf("slow consumer's queue not counted as dropped: %v", obs.dropped)
	}
	if obs.dropped[DropSuperseded] != 2 {
		t.Errorf("superseded drops %d, want 2", obs.dropped[DropSuperseded])
	}
	if len(obs.disconnects) != 1 || obs.disconnects[0] != protocol.DisconnectSlowConsumer {
		t.Errorf("disconnects %v, want one slow consumer", obs.disconnects)
	}
}

// waitQueued waits until publication i reached s's queue or s is closing.
func waitQueued(t *testing.T, s *Session, i int) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("publication %d to reach the session", i), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		sub := s.subs.get("drops:a")
		return s.closing != nil || (sub != nil && sub.offset >= uint64(i+1))
	})
}

// Every inbound frame is counted.
func TestObserverHearsFrames(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.HandleFrame(context.Background(), command(1, "connect", nil))
	p.s.HandleFrame(context.Background(), command(2, "subscribe", map[string]any{"channel": "frames"}))
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.received != 2 {
		t.Fatalf("%d frames counted, want 2", obs.received)
	}
}
