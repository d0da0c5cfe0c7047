package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/testkit"
)

// The channels of a connection token's claim reach the server-side
// handlers, and resume with nothing lost after every forced disconnect in
// the middle of a stream.
func TestServerSideSubscriptions(t *testing.T) {
	const total, cuts = 600, 4
	srv := authServer(t)
	px := newProxy(t, srv.Addr())
	channels := []string{"auth:ss-a", "auth:ss-b"}
	recs := map[string]*recorder{}
	handlers := map[string]client.SubscriptionConfig{}
	for _, ch := range channels {
		recs[ch] = &recorder{}
		handlers[ch] = recs[ch].config()
	}
	var mu sync.Mutex
	var joins []client.JoinEvent
	c := newClient(t, px.URL(), client.WebSocket, func(cfg *client.Config) {
		cfg.Token = mint(t, auth.MintOptions{UserID: "dana", TTL: time.Hour, Channels: channels})
		cfg.OnServerSubscribed = func(e client.SubscribedEvent) { handlers[e.Channel].OnSubscribed(e) }
		cfg.OnServerPublication = func(p client.Publication) { handlers[p.Channel].OnPublication(p) }
		cfg.OnServerJoin = func(e client.JoinEvent) { mu.Lock(); joins = append(joins, e); mu.Unlock() }
	})
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range channels {
		if ev := recs[ch].waitSubscribed(t, 1)[0]; ev.Channel != ch || ev.WasRecovering || !ev.Recoverable {
			t.Fatalf("first server-side subscribed event %+v", ev)
		}
	}

	// The channel is taken by the server-side subscription.
	dup, err := c.NewSubscription(channels[0], client.SubscriptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dup.Subscribe(ctx); codeOf(err) != client.CodeAlreadySubscribed {
		t.Fatalf("Subscribe to a server-side channel: %v", err)
	}
	// Presence events of server-side channels reach OnServerJoin.
	other := newClient(t, srv.URL(), client.WebSocket, func(cfg *client.Config) {
		cfg.Token = mint(t, auth.MintOptions{UserID: "erin", TTL: time.Hour})
	})
	subscribeAll(t, other, channels[:1])
	testkit.WaitFor(t, 10*time.Second, "erin's join", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, j := range joins {
			if j.Channel == channels[0] && j.Info.User == "erin" {
				return true
			}
		}
		return false
	})

	pub := startPublisher(t, srv.URL, channels, total, 2*time.Millisecond)
	for i := range cuts {
		target := received(recs) + 50
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%d publications before cut %d", target, i), func() bool { return received(recs) >= target })
		if px.cut() == 0 {
			t.Fatalf("cut %d: no connection to cut", i)
		}
	}
	select {
	case <-pub.done:
	case <-time.After(60 * time.Second):
		t.Fatal("publisher did not finish")
	}
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("all %d publications", total), func() bool { return received(recs) >= total })
	// Two subscriptions share the proxy: the other client's connection is
	// direct, so each cut is this client's.
	if resumes := checkStream(t, recs, total); resumes < len(channels)*cuts {
		t.Fatalf("%d resumes for %d cuts of %d channels", resumes, cuts, len(channels))
	}
}

// On a scripted server: positions of server-side subscriptions go back in
// the connect command, a temporary failure of one reconnects, and a
// permanent one ends it with OnServerUnsubscribed.
func TestServerSideOnFakeServer(t *testing.T) {
	connects := make(chan json.RawMessage, 3)
	f := newFakeWS(t, func(_ context.Context, n int, c *fakeConn) {
		cmds, err := c.read()
		if err != nil || cmds[0].Method != "connect" {
			return
		}
		connects <- cmds[0].Params
		c.send(fmt.Sprintf(`{"id":%d,"result":{"client":"fake","user":"u","version":"t","ping":0,"pong":0}}`, cmds[0].ID))
		switch n {
		case 1:
			c.send(`{"type":"subscribed","channel":"x","epoch":"E1","offset":5,"recoverable":true}`,
				`{"type":"publication","channel":"x","offset":6,"data":1,"time":1}`,
				`{"type":"unsubscribe","channel":"x","code":108,"reason":"not available"}`)
		case 2:
			c.send(`{"type":"subscribed","channel":"x","epoch":"E1","offset":7,"recoverable":true,"was_recovering":true,"recovered":true}`,
				`{"type":"publication","channel":"x","offset":7,"data":2,"time":1}`,
				`{"type":"unsubscribe","channel":"x","code":103,"reason":"permission denied"}`)
			c.drain()
		}
	})
	var mu sync.Mutex
	var log []string
	add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	c := newClient(t, f.srv.URL, client.WebSocket, func(cfg *client.Config) {
		cfg.OnServerSubscribed = func(e client.SubscribedEvent) {
			add(fmt.Sprintf("subscribed %s %v recovered=%v", e.Channel, e.Position, e.Recovered))
		}
		cfg.OnServerPublication = func(p client.Publication) { add(fmt.Sprintf("publication %s %v %s", p.Channel, p.Position(), p.Data)) }
		cfg.OnServerUnsubscribed = func(e client.UnsubscribedEvent) { add(fmt.Sprintf("unsubscribed %s %d", e.Channel, codeOf(e.Err))) }
	})
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"subscribed x E1-5 recovered=false",
		"publication x E1-6 1",
		"subscribed x E1-6 recovered=true",
		"publication x E1-7 2",
		"unsubscribed x 103",
	}
	testkit.WaitFor(t, 10*time.Second, "the server-side events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(log) == len(want)
	})
	mu.Lock()
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Errorf("events:\n%q\nwant\n%q", log, want)
	}
	mu.Unlock()
	if first, second := string(<-connects), string(<-connects); first != `{"name":""}` && first != `{}` || second != `{"subs":{"x":{"epoch":"E1","offset":6}}}` {
		t.Fatalf("connect params %s, then %s", first, second)
	}
	// The reader may hand over the pushes that follow the connect reply
	// before the session records the connection as up.
	testkit.WaitFor(t, 5*time.Second, "the client to stay connected", func() bool { return c.State() == client.StateConnected })
	if n := f.conns.Load(); n != 2 {
		t.Fatalf("%d connections", n)
	}
}
