package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// presenceNodes starts two engines, as two nodes, sharing a new prefix on
// srv, and returns them with the prefix.
func presenceNodes(t *testing.T, srv *testkit.NATSServer, ttl time.Duration) ([2]*nats.Engine, string) {
	t.Helper()
	prefix := testkit.NATSPrefix()
	removeStreamsAfter(t, srv, prefix)
	var nodes [2]*nats.Engine
	for i := range nodes {
		nodes[i] = newEngine(t, srv, nats.Config{Prefix: prefix, PresenceTTL: ttl})
		start(t, nodes[i], fmt.Sprintf("node-%d", i))
	}
	return nodes, prefix
}

// presenceState reads the presence bucket's stream state under prefix: what
// the engines left in it, consumers included.
func presenceState(t *testing.T, srv *testkit.NATSServer, prefix string) jetstream.StreamState {
	t.Helper()
	nc, err := natsgo.Connect(srv.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s, err := js.Stream(t.Context(), "KV_"+prefix+"_presence")
	if err != nil {
		t.Fatalf("presence stream: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("presence stream info: %v", err)
	}
	return info.State
}

func stats(t *testing.T, e *nats.Engine, ch string) engine.PresenceStats {
	t.Helper()
	st, err := e.PresenceStats(t.Context(), ch)
	if err != nil {
		t.Fatalf("PresenceStats: %v", err)
	}
	return st
}

// inParallel runs f(i) for i in [0, n) on a few goroutines.
func inParallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := f(i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestPresenceStatsLargeChannel: two nodes add 450 clients of 50 users and
// 50 anonymous ones to a channel; the counts are exact, removing all of one
// user's clients takes the user away, and neither counting nor removing
// leaves anything in the bucket: no consumer, no delete marker.
func TestPresenceStatsLargeChannel(t *testing.T) {
	srv := testkit.StartNATS(t)
	nodes, prefix := presenceNodes(t, srv, 0)
	ctx := t.Context()
	const ch, clients, named, users = "room:large", 500, 450, 50
	info := func(i int) protocol.ClientInfo {
		user := ""
		if i < named {
			user = fmt.Sprintf("user-%d", i%users)
		}
		return protocol.ClientInfo{Client: fmt.Sprintf("client-%d", i), User: user}
	}
	inParallel(t, clients, func(i int) error { return nodes[i%2].AddPresence(ctx, ch, info(i)) })
	for _, e := range nodes {
		if st := stats(t, e, ch); st != (engine.PresenceStats{NumClients: clients, NumUsers: users}) {
			t.Fatalf("stats %+v, want %d clients, %d users", st, clients, users)
		}
	}
	if p, err := nodes[0].Presence(ctx, ch); err != nil || len(p) != clients || p["client-7"].User != "user-7" {
		t.Fatalf("Presence: %d clients, client-7 %+v, err %v; want %d", len(p), p["client-7"], err, clients)
	}

	// All of user-7's clients (9), one of user-8's and 10 anonymous ones
	// leave, removed by either node.
	var gone []int
	for i := 7; i < named; i += users {
		gone = append(gone, i)
	}
	gone = append(gone, 8)
	for i := named; i < named+10; i++ {
		gone = append(gone, i)
	}
	inParallel(t, len(gone), func(j int) error {
		return nodes[j%2].RemovePresence(ctx, ch, info(gone[j]).Client)
	})
	want := engine.PresenceStats{NumClients: clients - len(gone), NumUsers: users - 1}
	if st := stats(t, nodes[1], ch); st != want {
		t.Fatalf("after removals: stats %+v, want %+v", st, want)
	}
	if s := presenceState(t, srv, prefix); s.Consumers != 0 || s.Msgs != uint64(want.NumClients+want.NumUsers) {
		t.Fatalf("presence stream holds %d messages and %d consumers, want %d entries and no consumer",
			s.Msgs, s.Consumers, want.NumClients+want.NumUsers)
	}
}

// TestPresenceUserRace: while one node removes a user's last client,
// another adds a new client of the same user; the user still counts
// afterwards, and not once both clients are gone.
func TestPresenceUserRace(t *testing.T) {
	srv := testkit.StartNATS(t)
	nodes, prefix := presenceNodes(t, srv, 0)
	ctx := t.Context()
	const ch = "room:race"
	for i := range 30 {
		leaving := protocol.ClientInfo{Client: fmt.Sprintf("leaving-%d", i), User: "ann"}
		joining := protocol.ClientInfo{Client: fmt.Sprintf("joining-%d", i), User: "ann"}
		if err := nodes[0].AddPresence(ctx, ch, leaving); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := nodes[0].RemovePresence(ctx, ch, leaving.Client); err != nil {
				t.Errorf("RemovePresence: %v", err)
			}
		})
		wg.Go(func() {
			if err := nodes[1].AddPresence(ctx, ch, joining); err != nil {
				t.Errorf("AddPresence: %v", err)
			}
		})
		wg.Wait()
		if st := stats(t, nodes[0], ch); st != (engine.PresenceStats{NumClients: 1, NumUsers: 1}) {
			t.Fatalf("round %d: stats %+v with one client of ann present, want 1 client, 1 user", i, st)
		}
		if err := nodes[1].RemovePresence(ctx, ch, joining.Client); err != nil {
			t.Fatalf("RemovePresence: %v", err)
		}
		if st := stats(t, nodes[1], ch); st != (engine.PresenceStats{}) {
			t.Fatalf("round %d: stats %+v with nobody present, want none", i, st)
		}
	}
	if s := presenceState(t, srv, prefix); s.Msgs != 0 || s.Consumers != 0 {
		t.Fatalf("presence stream holds %d messages and %d consumers, want none", s.Msgs, s.Consumers)
	}
}

// TestPresenceDeadNode: the clients and users of a node that dies without
// removing them stop counting within a presence TTL, even when the user has
// clients on a live node that leave; a client listed for its user that has
// not been added again for long is not counted at all.
func TestPresenceDeadNode(t *testing.T) {
	srv := testkit.StartNATS(t)
	const ttl = 300 * time.Millisecond
	nodes, _ := presenceNodes(t, srv, ttl)
	dead, live := nodes[0], nodes[1]
	ctx := t.Context()
	const ch, stale = "room:dead", "room:stale"
	onDead := protocol.ClientInfo{Client: "on-dead", User: "ann"}
	onLive := protocol.ClientInfo{Client: "on-live", User: "ann"}
	for _, c := range []string{ch, stale} {
		if err := dead.AddPresence(ctx, c, onDead); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	deadAdded := time.Now()
	if err := dead.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for _, c := range []string{ch, stale} {
		if err := live.AddPresence(ctx, c, onLive); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	// On the other channel, the live client stays, keeping ann's entry
	// (which lists the dead client too) from expiring.
	refresh := func() {
		if err := live.AddPresence(ctx, stale, onLive); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	if err := live.RemovePresence(ctx, ch, onLive.Client); err != nil {
		t.Fatalf("RemovePresence: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "the dead node's client and user to expire", func() bool {
		refresh()
		return stats(t, live, ch) == engine.PresenceStats{}
	})

	// Once the dead client is two presence TTLs old, the live one's leaving
	// takes the user away at once.
	testkit.WaitFor(t, waitTimeout, "the dead node's client to be stale", func() bool {
		refresh()
		return time.Since(deadAdded) > 2*ttl+10*time.Millisecond
	})
	if st := stats(t, live, stale); st != (engine.PresenceStats{NumClients: 1, NumUsers: 1}) {
		t.Fatalf("stats %+v with one live client, want 1 client, 1 user", st)
	}
	if err := live.RemovePresence(ctx, stale, onLive.Client); err != nil {
		t.Fatalf("RemovePresence: %v", err)
	}
	if st := stats(t, live, stale); st != (engine.PresenceStats{}) {
		t.Fatalf("stats %+v once the live client left, want none", st)
	}
}

// BenchmarkPresenceStats counts a channel of 5,000 clients of 500 users.
func BenchmarkPresenceStats(b *testing.B) {
	srv := testkit.StartNATS(b)
	ctx := context.Background()
	e := newEngine(b, srv, nats.Config{})
	b.Cleanup(func() { _ = e.Close(ctx) })
	if err := e.Start(ctx, "bench", enginetest.Discard{}); err != nil {
		b.Fatal(err)
	}
	const ch, members, users = "bench:presence", 5000, 500
	for i := range members {
		info := protocol.ClientInfo{Client: fmt.Sprintf("client-%d", i), User: fmt.Sprintf("user-%d", i%users)}
		if err := e.AddPresence(ctx, ch, info); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		st, err := e.PresenceStats(ctx, ch)
		if err != nil {
			b.Fatal(err)
		}
		if st != (engine.PresenceStats{NumClients: members, NumUsers: users}) {
			b.Fatalf("stats %+v, want %d clients, %d users", st, members, users)
		}
	}
}
