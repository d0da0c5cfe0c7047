package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// drainUntil drains s until done holds for what it drained, or fails after
// the deadline, and returns the items.
func drainUntil(t *testing.T, s *Session, done func([]Item) bool) []Item {
	t.Helper()
	var got []Item
	testkit.WaitFor(t, 10*time.Second, "items drained", func() bool {
		items, d := s.Drain(nil)
		if d != nil {
			t.Fatalf("session disconnected while draining: %+v", d)
		}
		got = append(got, items...)
		return done(got)
	})
	return got
}

// TestResumeAfterSlowConsumer fills a session's queue until it is closed as
// a slow consumer (4001), then resumes its two channels on a new session
// from the last offsets it received. Both recover every publication they
// missed, in order: the quiet channel's fit in the queue at once, the
// flooded one's overflowed it by construction and arrive page by page as
// the new session reads. Both then go on live.
func TestResumeAfterSlowConsumer(t *testing.T) {
	const queue = 8 << 10
	n := newTestNode(t, Config{MaxQueueBytes: queue})
	ctx := context.Background()
	const flood, calm = "slow:flood", "slow:calm"
	channels := []string{calm, flood}

	stuck := &pipe{wake: make(chan struct{}, 1), done: make(chan struct{})}
	s, err := n.NewSession(stuck, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finish()
	if err := s.SubscribeStream(ctx, channels, nil, nil); err != nil {
		t.Fatal(err)
	}
	healthy := openSession(t, n, SessionOptions{})
	if err := healthy.s.SubscribeStream(ctx, []string{flood}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The client reads the first publications, then stops reading.
	var calmEpoch string
	for i := range 3 {
		publish(t, n, flood, i)
		calmEpoch = publish(t, n, calm, i).Epoch
	}
	read := drainUntil(t, s, func(items []Item) bool {
		return len(publicationOffsets(items, flood)) == 3 && len(publicationOffsets(items, calm)) == 3
	})
	lastFlood, lastCalm := publicationOffsets(read, flood)[2], publicationOffsets(read, calm)[2]

	missedCalm := 0
	for i := 0; s.Closing() == nil; i++ {
		if i == 1000 {
			t.Fatalf("queue of %d bytes never overflowed", queue)
		}
		if i%20 == 0 {
			publish(t, n, calm, i)
			missedCalm++
		}
		publish(t, n, flood, i)
		// Deliveries run on the engine's goroutine; the healthy session
		// paces the loop on them, so it stops at the overflow.
		testkit.WaitFor(t, 10*time.Second, "the healthy session to receive", func() bool {
			return len(publicationOffsets(healthy.items(), flood)) == i+4
		})
	}
	if _, d := s.Drain(nil); d == nil || *d != protocol.DisconnectSlowConsumer {
		t.Fatalf("stuck session closed with %v, want slow consumer", d)
	}
	s.Finish()
	top := publish(t, n, flood, -1)

	p := openSession(t, n, SessionOptions{})
	positions := []protocol.StreamPosition{{Epoch: calmEpoch, Offset: lastCalm}, {Epoch: top.Epoch, Offset: lastFlood}}
	if err := p.s.SubscribeStream(ctx, channels, positions, nil); err != nil {
		t.Fatal(err)
	}
	subscribed := map[string]SubscribedPush{}
	testkit.WaitFor(t, 10*time.Second, "both subscribed", func() bool {
		for _, it := range p.items() {
			var sp SubscribedPush
			if it.Kind == ItemSubscribed && json.Unmarshal(it.Frame, &sp) == nil {
				subscribed[sp.Channel] = sp
			}
		}
		return len(subscribed) == 2
	})
	if sp := subscribed[calm]; !sp.WasRecovering || !sp.Recovered {
		t.Fatalf("%s resumed with %+v, want recovered", calm, sp)
	}
	if sp := subscribed[flood]; !sp.WasRecovering || !sp.Recovered {
		t.Fatalf("%s resumed with %+v, want recovered", flood, sp)
	}
	publish(t, n, calm, -1)
	live := publish(t, n, flood, -2)
	testkit.WaitFor(t, 10*time.Second, "live publications after the resume", func() bool {
		offs := publicationOffsets(p.items(), flood)
		return p.disconnect() != nil || len(offs) > 0 && offs[len(offs)-1] == live.Offset
	})
	for _, c := range []struct {
		channel string
		from    uint64
		want    int
	}{
		{calm, lastCalm, missedCalm + 1},
		{flood, lastFlood, int(live.Offset - lastFlood)},
	} {
		offs := publicationOffsets(p.items(), c.channel)
		if len(offs) != c.want {
			t.Fatalf("%s: %d publications after %d, want the %d missed and one live", c.channel, len(offs), c.from, c.want-1)
		}
		for i, off := range offs {
			if off != c.from+1+uint64(i) {
				t.Fatalf("%s: offsets %v after %d: lost or repeated", c.channel, offs, c.from)
			}
		}
	}
	if d := p.disconnect(); d != nil {
		t.Fatalf("resumed session disconnected: %+v", d)
	}
}
