package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/testkit"
)

// restrictedServer is a dev server with a few namespaces that say no.
func restrictedServer(t *testing.T) *testServer {
	return startServer(t, func(c *server.Config) {
		open := node.DevNamespace("")
		closed := open
		closed.Name, closed.Subscribe = "closed", node.AccessNobody
		readonly := open
		readonly.Name, readonly.Publish, readonly.HistoryAccess, readonly.PresenceAccess = "readonly", node.AccessNobody, node.AccessNobody, node.AccessNobody
		nohist := open
		nohist.Name, nohist.HistorySize, nohist.HistoryTTL = "nohist", 0, 0
		c.Namespaces = []node.NamespaceOptions{closed, readonly, nohist}
	})
}

func codeOf(err error) uint32 {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// A refused subscription returns the server's error from Subscribe, ends
// with OnUnsubscribed, and leaves the client and its other subscriptions
// alone.
func TestSubscribeRefused(t *testing.T) {
	srv := restrictedServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			var good recorder
			ok, err := c.NewSubscription("fine:"+tr.String(), good.config())
			if err != nil {
				t.Fatal(err)
			}
			if err := ok.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			var rec recorder
			sub, err := c.NewSubscription("closed:x", rec.config())
			if err != nil {
				t.Fatal(err)
			}
			err = sub.Subscribe(ctx)
			if codeOf(err) != client.CodePermissionDenied {
				t.Fatalf("Subscribe to a closed namespace: %v", err)
			}
			if sub.State() != client.SubscriptionUnsubscribed {
				t.Fatalf("state %v", sub.State())
			}
			testkit.WaitFor(t, 5*time.Second, "OnUnsubscribed", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.unsubscribed) == 1 && codeOf(rec.unsubscribed[0].Err) == client.CodePermissionDenied
			})

			// Polling needs history; the other transports do not.
			nh, err := c.NewSubscription("nohist:x", client.SubscriptionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			err = nh.Subscribe(ctx)
			if tr == client.LongPoll || tr == client.ShortPoll {
				if codeOf(err) != client.CodeNotAvailable {
					t.Fatalf("polling a channel without history: %v", err)
				}
			} else if err != nil {
				t.Fatalf("subscribing a channel without history: %v", err)
			}

			// The good subscription still works.
			mustPublish(t, srv.URL(), "fine:"+tr.String(), 1)
			good.waitPubs(t, 1)
			if c.State() != client.StateConnected || ok.State() != client.SubscriptionSubscribed {
				t.Fatalf("after refusals: client %v, subscription %v", c.State(), ok.State())
			}
		})
	}
}

func TestNewSubscriptionValidates(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", client.WebSocket, nil)
	if _, err := c.NewSubscription("bad channel", client.SubscriptionConfig{}); err == nil {
		t.Error("invalid channel name accepted")
	}
	if _, err := c.NewSubscription("a", client.SubscriptionConfig{Since: &client.StreamPosition{Epoch: "no-dash", Offset: 1}}); err == nil {
		t.Error("invalid epoch accepted")
	}
	sub, err := c.NewSubscription("a", client.SubscriptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.GetSubscription("a"); !ok || got != sub {
		t.Fatal("GetSubscription does not find it")
	}
	// Before Connect, Subscribe only records the wish.
	if err := sub.Subscribe(context.Background()); err != nil || sub.State() != client.SubscriptionSubscribing {
		t.Fatalf("Subscribe before Connect: %v, %v", err, sub.State())
	}
	if err := c.RemoveSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(context.Background()); !errors.Is(err, client.ErrRemoved) {
		t.Fatalf("Subscribe after RemoveSubscription: %v", err)
	}
	if _, err := c.NewSubscription("a", client.SubscriptionConfig{}); err != nil {
		t.Fatalf("NewSubscription after RemoveSubscription: %v", err)
	}
}

// Since resumes a subscription from a position saved earlier, possibly by
// another process; a position from another epoch is reported as not
// recovered.
func TestSubscribeSince(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			channel := "since:" + tr.String()
			var first client.PublishResult
			for i := range 10 {
				r := mustPublish(t, srv.URL(), channel, i)
				if i == 3 {
					first = r
				}
			}
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			var rec recorder
			cfg := rec.config()
			cfg.Since = &client.StreamPosition{Epoch: first.Epoch, Offset: first.Offset}
			sub, err := c.NewSubscription(channel, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			ev := rec.waitSubscribed(t, 1)[0]
			if !ev.WasRecovering || !ev.Recovered || ev.Position != *cfg.Since {
				t.Fatalf("subscribed %+v", ev)
			}
			pubs := rec.waitPubs(t, 6)
			if got := seqs(t, pubs); got[0] != 4 || got[5] != 9 || pubs[0].Offset != first.Offset+1 {
				t.Fatalf("resumed with seqs %v", got)
			}

			var stale recorder
			cfg = stale.config()
			cfg.Since = &client.StreamPosition{Epoch: "gone", Offset: 3}
			sub2, err := c.NewSubscription(channel+"b", cfg)
			if err != nil {
				t.Fatal(err)
			}
			mustPublish(t, srv.URL(), channel+"b", 0)
			if err := sub2.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			if ev := stale.waitSubscribed(t, 1)[0]; !ev.WasRecovering || ev.Recovered || ev.Position.Offset != 1 {
				t.Fatalf("stale position: %+v", ev)
			}
		})
	}
}

// Join and leave events reach WebSocket and SSE subscriptions.
func TestJoinLeave(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range []client.Transport{client.WebSocket, client.SSE} {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			channel := "presence:" + tr.String()
			watcher := newClient(t, srv.URL(), tr, nil)
			recs := subscribeAll(t, watcher, []string{channel})
			rec := recs[channel]

			var id string
			joiner := newClient(t, srv.URL(), client.WebSocket, func(cfg *client.Config) {
				cfg.OnConnected = func(e client.ConnectedEvent) { id = e.ClientID }
			})
			sub, err := joiner.NewSubscription(channel, client.SubscriptionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := joiner.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			clients, err := watcher.Presence(ctx, channel)
			if err != nil || len(clients) != 2 {
				t.Fatalf("presence %v, %v", clients, err)
			}
			if err := sub.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 10*time.Second, "join and leave of the other client", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.joins) >= 2 && len(rec.leaves) >= 1
			})
			rec.mu.Lock()
			defer rec.mu.Unlock()
			// The first join is the watcher's own.
			if j := rec.joins[1]; j.Channel != channel || j.Info.Client == "" {
				t.Fatalf("join %+v", j)
			}
			if id == "" || rec.joins[1].Info.Client != id || rec.leaves[0].Info.Client != id {
				t.Fatalf("join %+v, leave %+v, joiner %q", rec.joins[1], rec.leaves[0], id)
			}
		})
	}
}

// An ephemeral publication reaches live WebSocket and SSE subscribers with
// offset 0 and moves no position. Polling reads history, so it never sees
// one.
func TestEphemeral(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range []client.Transport{client.WebSocket, client.SSE} {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			channel := "eph:" + tr.String()
			c := newClient(t, srv.URL(), tr, nil)
			rec := subscribeAll(t, c, []string{channel})[channel]
			mustPublish(t, srv.URL(), channel, 0)
			res, err := c.Publish(ctx, channel, []byte(`{"typing":true}`), client.Ephemeral(), client.WithTags(map[string]string{"k": "v"}))
			if err != nil || res.Offset != 0 || res.Epoch != "" {
				t.Fatalf("ephemeral publish: %+v, %v", res, err)
			}
			mustPublish(t, srv.URL(), channel, 1)
			pubs := rec.waitPubs(t, 3)
			if pubs[1].Offset != 0 || pubs[1].Epoch != "" || pubs[1].Tags["k"] != "v" || pubs[2].Offset != 2 {
				t.Fatalf("publications %+v", pubs)
			}
			// Over HTTP (SSE) the publisher is anonymous: no info.
			if (pubs[1].Info != nil) != (tr == client.WebSocket) {
				t.Fatalf("publisher info %+v", pubs[1].Info)
			}
			sub, _ := c.GetSubscription(channel)
			if sub.Position().Offset != 2 {
				t.Fatalf("position %v", sub.Position())
			}
		})
	}
}

// Adding and removing subscriptions while one receives a steady stream
// reopens the SSE stream and changes the poll loop's channel list each
// time; the steady subscription must lose and repeat nothing.
func TestChangingSubscriptionsUnderLoad(t *testing.T) {
	const total = 400
	// The loop changes subscriptions as fast as it can, far beyond the
	// command rate a real client needs.
	srv := startServer(t, func(c *server.Config) { c.CommandRate, c.CommandBurst = 1e6, 1e6 })
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			steady := "steady:" + tr.String()
			c := newClient(t, srv.URL(), tr, nil)
			recs := subscribeAll(t, c, []string{steady})
			pub := startPublisher(t, srv.URL, []string{steady}, total, time.Millisecond)
			for i := 0; received(recs) < total/2; i++ {
				sub, err := c.NewSubscription(fmt.Sprintf("churn-%s:%d", tr, i), client.SubscriptionConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctx); err != nil {
					t.Fatal(err)
				}
				// Keep a few of them, within the server's limit of
				// subscriptions per connection.
				if i%2 == 0 || i > 20 {
					if err := c.RemoveSubscription(ctx, sub); err != nil {
						t.Fatal(err)
					}
				}
			}
			<-pub.done
			testkit.WaitFor(t, 20*time.Second, "every publication", func() bool { return received(recs) >= total })
			checkStream(t, recs, total)
		})
	}
}

// TestLatestSubscription: over WebRTC a latest-only subscription may skip
// values but never goes back, ends at the newest, and skipping is no reason
// to reconnect; over WebSocket it gets every publication.
func TestLatestSubscription(t *testing.T) {
	srv := startServer(t, nil)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, tr := range []client.Transport{client.WebRTC, client.WebSocket} {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			var connects atomic.Int32
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.OnConnected = func(client.ConnectedEvent) { connects.Add(1) }
			})
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			var rec recorder
			cfg := rec.config()
			cfg.Latest = true
			channel := "cursor:" + tr.String()
			sub, err := c.NewSubscription(channel, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			const n = 300
			var newest uint64
			for i := range n {
				res, err := apiPublish(t, hc, srv.URL(), channel, map[string]int{"x": i}, "")
				if err != nil {
					t.Fatal(err)
				}
				newest = res.Offset
			}
			testkit.WaitFor(t, 10*time.Second, "the newest value", func() bool {
				pubs := rec.publications()
				return len(pubs) > 0 && pubs[len(pubs)-1].Offset == newest
			})
			pubs := rec.publications()
			for i := 1; i < len(pubs); i++ {
				if pubs[i].Offset <= pubs[i-1].Offset {
					t.Fatalf("offset %d after %d", pubs[i].Offset, pubs[i-1].Offset)
				}
			}
			if tr == client.WebSocket && len(pubs) != n {
				t.Fatalf("websocket delivered %d of %d", len(pubs), n)
			}
			if got := connects.Load(); got != 1 {
				t.Fatalf("connected %d times", got)
			}
			t.Logf("%s: %d of %d values delivered, in order, the newest last", tr, len(pubs), n)
		})
	}
}
