package enginetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func client(id, user string) protocol.ClientInfo {
	return protocol.ClientInfo{Client: id, User: user, Info: json.RawMessage(`{"id":"` + id + `"}`)}
}

// testJoinLeave: presence events reach the handler of a subscribed channel
// in order, and not the handler of an unsubscribed one.
func (s *suite) testJoinLeave(t *testing.T) {
	e, rec := s.start(t)
	ch, other := channelName("joins"), channelName("joins-other")
	subscribe(t, e, ch)
	ctx := t.Context()
	a, b := client("a", "u1"), client("b", "u2")
	for _, err := range []error{
		e.PublishJoin(ctx, other, a),
		e.PublishJoin(ctx, ch, a),
		e.PublishJoin(ctx, ch, b),
		e.PublishLeave(ctx, ch, a),
	} {
		if err != nil {
			t.Fatalf("PublishJoin/PublishLeave: %v", err)
		}
	}
	testkit.WaitFor(t, waitTimeout, "join and leave events", func() bool { return len(rec.joined(ch)) == 2 && len(rec.left(ch)) == 1 })
	joins, leaves := rec.joined(ch), rec.left(ch)
	if joins[0].Client != "a" || joins[1].Client != "b" || string(joins[1].Info) != string(b.Info) || leaves[0].Client != "a" {
		t.Fatalf("joins %+v, leaves %+v; want a then b joining and a leaving", joins, leaves)
	}
	never(t, "join delivered on an unsubscribed channel", func() bool { return len(rec.joined(other)) != 0 })
}

func presenceStats(t *testing.T, e engine.Engine, ch string) engine.PresenceStats {
	t.Helper()
	st, err := e.PresenceStats(t.Context(), ch)
	if err != nil {
		t.Fatalf("PresenceStats: %v", err)
	}
	return st
}

func presenceOf(t *testing.T, e engine.Engine, ch string) map[string]protocol.ClientInfo {
	t.Helper()
	p, err := e.Presence(t.Context(), ch)
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	return p
}

// testPresence: add, refresh, list, count distinct users and remove.
func (s *suite) testPresence(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("presence")
	ctx := t.Context()
	for _, c := range []protocol.ClientInfo{client("c1", "u1"), client("c2", "u1"), client("c3", "u2"), client("anon", "")} {
		if err := e.AddPresence(ctx, ch, c); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	p := presenceOf(t, e, ch)
	if len(p) != 4 || p["c2"].User != "u1" || string(p["c3"].Info) != `{"id":"c3"}` || p["anon"].User != "" {
		t.Fatalf("presence %+v, want c1, c2 (u1), c3 (u2) and anon", p)
	}
	// Anonymous clients are clients, not users.
	if st := presenceStats(t, e, ch); st != (engine.PresenceStats{NumClients: 4, NumUsers: 2}) {
		t.Fatalf("stats %+v, want 4 clients, 2 users", st)
	}

	// Adding a present client again refreshes it: still one entry.
	refreshed := protocol.ClientInfo{Client: "c3", User: "u2", Info: json.RawMessage(`{"v":2}`)}
	if err := e.AddPresence(ctx, ch, refreshed); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if p := presenceOf(t, e, ch); len(p) != 4 || string(p["c3"].Info) != `{"v":2}` {
		t.Fatalf("after refresh: presence %+v, want 4 clients with c3's new info", p)
	}

	for _, id := range []string{"c2", "c1", "anon", "absent"} {
		if err := e.RemovePresence(ctx, ch, id); err != nil {
			t.Fatalf("RemovePresence(%s): %v", id, err)
		}
	}
	if st := presenceStats(t, e, ch); st != (engine.PresenceStats{NumClients: 1, NumUsers: 1}) {
		t.Fatalf("after removals: stats %+v, want 1 client, 1 user", st)
	}
	if p := presenceOf(t, e, channelName("empty")); len(p) != 0 {
		t.Fatalf("presence of an unused channel: %+v, want none", p)
	}
}

// testPresenceExpiry: an entry not refreshed disappears after the presence
// TTL (not before), while a refreshed one stays.
func (s *suite) testPresenceExpiry(t *testing.T) {
	e, _ := startEngine(t, s.newShortPresence(t))
	ch := channelName("presence-ttl")
	ctx := t.Context()
	stale, live := client("stale", "u1"), client("live", "u2")
	added := time.Now()
	for _, c := range []protocol.ClientInfo{stale, live} {
		if err := e.AddPresence(ctx, ch, c); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	testkit.WaitFor(t, waitTimeout, "the unrefreshed entry to expire", func() bool {
		if err := e.AddPresence(ctx, ch, live); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
		_, ok := presenceOf(t, e, ch)["stale"]
		return !ok
	})
	// Engines may store expiry times in whole milliseconds.
	if gone := time.Since(added); gone < s.presenceTTL-2*time.Millisecond {
		t.Fatalf("entry expired after %v, before the presence TTL %v", gone, s.presenceTTL)
	}
	if p := presenceOf(t, e, ch); len(p) != 1 || p["live"].Client != "live" {
		t.Fatalf("presence %+v, want only the refreshed client", p)
	}
	if st := presenceStats(t, e, ch); st != (engine.PresenceStats{NumClients: 1, NumUsers: 1}) {
		t.Fatalf("stats %+v, want 1 client, 1 user", st)
	}
}
