package node

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestJoinLeaveFollowsNamespace runs the same joins and leaves in a
// namespace with presence but no join/leave events and in one with both:
// presence lists the clients in each, but only the second pushes join and
// leave events to subscribers.
func TestJoinLeaveFollowsNamespace(t *testing.T) {
	opts := func(name string, joinLeave bool) NamespaceOptions {
		return NamespaceOptions{Name: name, HistorySize: 10, HistoryTTL: time.Hour, Presence: true, JoinLeave: joinLeave,
			Subscribe: AccessAnyone, PresenceAccess: AccessAnyone}
	}
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{opts("quiet", false), opts("loud", true)}})
	ctx := context.Background()
	const quiet, loud = "quiet:room", "loud:room"
	channels := []string{loud, quiet}

	watcher := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "alice"}})
	if err := watcher.s.SubscribeStream(ctx, channels, nil, nil); err != nil {
		t.Fatal(err)
	}
	bob := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "bob"}})
	if err := bob.s.SubscribeStream(ctx, channels, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, ch := range channels {
		p, err := n.Presence(ctx, ch)
		if err != nil || len(p) != 2 || p[bob.s.ID()].User != "bob" {
			t.Fatalf("presence of %s = %v, %v; want alice and bob", ch, p, err)
		}
	}
	bob.s.Close(protocol.DisconnectForced)
	<-bob.done

	count := func(channel, push string) int {
		c := 0
		for _, it := range watcher.items() {
			if it.Channel == channel && it.Push == push {
				c++
			}
		}
		return c
	}
	testkit.WaitFor(t, 10*time.Second, "joins and bob's leave on "+loud, func() bool {
		return count(loud, protocol.PushJoin) == 2 && count(loud, protocol.PushLeave) == 1
	})
	for _, ch := range channels {
		testkit.WaitFor(t, 10*time.Second, "bob gone from the presence of "+ch, func() bool {
			p, err := n.Presence(ctx, ch)
			return err == nil && len(p) == 1
		})
	}

	// The engine delivers a channel's events in the order they were sent,
	// so once a publication sent after the leave is in, any join or leave
	// event on quiet would be too.
	off := publish(t, n, quiet, 1).Offset
	testkit.WaitFor(t, 10*time.Second, "the marker publication on "+quiet, func() bool {
		offs := publicationOffsets(watcher.items(), quiet)
		return len(offs) == 1 && offs[0] == off
	})
	if j, l := count(quiet, protocol.PushJoin), count(quiet, protocol.PushLeave); j != 0 || l != 0 {
		t.Fatalf("%s has presence without join_leave, yet pushed %d joins and %d leaves", quiet, j, l)
	}
}
