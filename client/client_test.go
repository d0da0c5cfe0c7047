package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestNewValidates(t *testing.T) {
	for _, cfg := range []client.Config{
		{},
		{URL: "ftp://x"},
		{URL: "http://"},
		{URL: "http://x?y=1"},
		{URL: "http://x", Transport: client.Transport(9)},
		{URL: "http://x", MinBackoff: -1},
		{URL: "http://x", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		{URL: "http://x", PollTimeout: 61 * time.Second},
		{URL: "http://x", PollTimeout: time.Millisecond},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	for _, u := range []string{"http://x", "https://x/herald/", "ws://x:1", "wss://x"} {
		c, err := client.New(client.Config{URL: u})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if c.State() != client.StateDisconnected {
			t.Errorf("new client is %v", c.State())
		}
		_ = c.Close()
	}
}

func TestParseTransport(t *testing.T) {
	for _, tr := range transports {
		got, err := client.ParseTransport(tr.String())
		if err != nil || got != tr {
			t.Errorf("ParseTransport(%q) = %v, %v", tr, got, err)
		}
	}
	if _, err := client.ParseTransport("carrier-pigeon"); err == nil {
		t.Error("unknown transport accepted")
	}
}

// TestTransports runs the same scenario on every transport: subscribe,
// receive in order, publish as a client, history, presence, unsubscribe and
// resubscribe from the kept position.
func TestTransports(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			channel := "basics:" + tr.String()
			var connected atomic.Int32
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.OnConnected = func(e client.ConnectedEvent) {
					if e.Transport != tr {
						t.Errorf("connected event on %v", e.Transport)
					}
					connected.Add(1)
				}
			})
			var rec recorder
			sub, err := c.NewSubscription(channel, rec.config())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if c.State() != client.StateConnected {
				t.Fatalf("state %v after Connect", c.State())
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			if sub.State() != client.SubscriptionSubscribed {
				t.Fatalf("subscription %v after Subscribe", sub.State())
			}
			ev := rec.waitSubscribed(t, 1)[0]
			if ev.Channel != channel || ev.WasRecovering || ev.Recovered || !ev.Recoverable || ev.Position.Epoch == "" {
				t.Fatalf("first subscribed event %+v", ev)
			}

			const n = 200
			for i := range n {
				mustPublish(t, srv.URL(), channel, i)
			}
			res, err := c.Publish(ctx, channel, []byte(`{ "seq" : 200 }`), client.WithIdempotencyKey("k-"+tr.String()))
			if err != nil {
				t.Fatal(err)
			}
			if res.Offset != n+1 || res.Epoch != ev.Position.Epoch {
				t.Fatalf("publish result %+v", res)
			}
			again, err := c.Publish(ctx, channel, []byte(`{"seq":200}`), client.WithIdempotencyKey("k-"+tr.String()))
			if err != nil || again != res {
				t.Fatalf("idempotent retry: %+v, %v (first %+v)", again, err, res)
			}
			pubs := rec.waitPubs(t, n+1)
			for i, p := range pubs {
				if p.Offset != uint64(i+1) || p.Epoch != res.Epoch || p.Channel != channel || p.Time.IsZero() {
					t.Fatalf("publication %d: %+v", i, p)
				}
			}
			if got := seqs(t, pubs); got[0] != 0 || got[n] != n {
				t.Fatalf("seqs %v", got)
			}
			if string(pubs[n].Data) != `{"seq":200}` {
				t.Fatalf("client publication data %s", pubs[n].Data)
			}
			if pos := sub.Position(); pos != (client.StreamPosition{Epoch: res.Epoch, Offset: n + 1}) {
				t.Fatalf("position %v", pos)
			}

			hist, err := c.History(ctx, channel, client.HistoryOptions{Limit: 5, Reverse: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(hist.Publications) != 5 || hist.Publications[0].Offset != n+1 || hist.Position.Offset != n+1 || hist.Publications[0].Epoch != res.Epoch {
				t.Fatalf("history %+v", hist)
			}
			since := client.StreamPosition{Epoch: res.Epoch, Offset: n - 1}
			hist, err = c.History(ctx, channel, client.HistoryOptions{Since: &since})
			if err != nil || len(hist.Publications) != 2 || hist.Publications[0].Offset != n {
				t.Fatalf("history since %v: %+v, %v", since, hist, err)
			}

			// Clients on WebSocket, SSE and WebRTC are in presence; pollers
			// are not.
			clients, err := c.Presence(ctx, channel)
			if err != nil {
				t.Fatal(err)
			}
			stats, err := c.PresenceStats(ctx, channel)
			if err != nil {
				t.Fatal(err)
			}
			inPresence := tr == client.WebSocket || tr == client.SSE || tr == client.WebRTC
			if inPresence && (len(clients) != 1 || stats.NumClients != 1) || !inPresence && (len(clients) != 0 || stats.NumClients != 0) {
				t.Fatalf("presence %v, stats %+v", clients, stats)
			}

			// Unsubscribe keeps the position: subscribing again resumes.
			if err := sub.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			if sub.State() != client.SubscriptionUnsubscribed {
				t.Fatalf("state %v after Unsubscribe", sub.State())
			}
			mustPublish(t, srv.URL(), channel, n+1)
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			evs := rec.waitSubscribed(t, 2)
			if e := evs[1]; !e.WasRecovering || !e.Recovered || e.Position.Offset != n+1 {
				t.Fatalf("resubscribe %+v", e)
			}
			mustPublish(t, srv.URL(), channel, n+2)
			pubs = rec.waitPubs(t, n+3)
			for i, p := range pubs {
				if p.Offset != uint64(i+1) {
					t.Fatalf("after resubscribe: publication %d has offset %d", i, p.Offset)
				}
			}
			if len(rec.unsubscribed) != 1 || rec.unsubscribed[0].Err != nil {
				t.Fatalf("unsubscribed events %+v", rec.unsubscribed)
			}
			if connected.Load() != 1 {
				t.Fatalf("%d connected events", connected.Load())
			}
		})
	}
}

// Several subscriptions share one connection, stream or poll loop, and
// each gets its own channel's publications only.
func TestManySubscriptions(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			const subs = 5
			recs := make([]*recorder, subs)
			for i := range recs {
				recs[i] = &recorder{}
				sub, err := c.NewSubscription(fmt.Sprintf("many-%s:%d", tr, i), recs[i].config())
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for round := range 10 {
				for i := range subs {
					mustPublish(t, srv.URL(), fmt.Sprintf("many-%s:%d", tr, i), round)
				}
			}
			for i, r := range recs {
				pubs := r.waitPubs(t, 10)
				for j, p := range pubs {
					if p.Channel != fmt.Sprintf("many-%s:%d", tr, i) || p.Offset != uint64(j+1) {
						t.Fatalf("subscription %d got %+v", i, p)
					}
				}
			}
			if _, err := c.NewSubscription("many-"+tr.String()+":0", client.SubscriptionConfig{}); !errors.Is(err, client.ErrDuplicateSubscription) {
				t.Fatalf("duplicate: %v", err)
			}
		})
	}
}

func TestConnectRefusedServerKeepsTrying(t *testing.T) {
	// Nothing listens here: Connect keeps trying until its context ends,
	// reporting each failed attempt.
	var errs atomic.Int32
	c := newClient(t, "http://127.0.0.1:1", client.WebSocket, func(cfg *client.Config) {
		cfg.OnError = func(client.ErrorEvent) { errs.Add(1) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect: %v", err)
	}
	if c.State() != client.StateConnecting {
		t.Fatalf("state %v", c.State())
	}
	testkit.WaitFor(t, 5*time.Second, "failed attempts reported", func() bool { return errs.Load() >= 2 })
	_ = c.Close()
	if err := c.Connect(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Connect after Close: %v", err)
	}
	if _, err := c.Publish(context.Background(), "a", []byte("1")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestCommandsNeedConnect(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range transports {
		c := newClient(t, srv.URL(), tr, nil)
		if _, err := c.Publish(context.Background(), "a", []byte("1")); !errors.Is(err, client.ErrNotConnected) {
			t.Errorf("%v: Publish before Connect: %v", tr, err)
		}
		if _, err := c.Publish(context.Background(), "a", []byte("{")); err == nil || !strings.Contains(err.Error(), "JSON") {
			t.Errorf("%v: Publish of bad JSON: %v", tr, err)
		}
	}
}

// A handler may call Close; Close then returns without waiting for it.
func TestCloseFromHandler(t *testing.T) {
	srv := startServer(t, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			closed := make(chan struct{})
			c := newClient(t, srv.URL(), tr, nil)
			sub, err := c.NewSubscription("close:"+tr.String(), client.SubscriptionConfig{
				OnPublication: func(client.Publication) {
					_ = c.Close()
					close(closed)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			mustPublish(t, srv.URL(), "close:"+tr.String(), 1)
			select {
			case <-closed:
			case <-ctx.Done():
				t.Fatal("handler did not run")
			}
			if c.State() != client.StateClosed || sub.State() != client.SubscriptionUnsubscribed {
				t.Fatalf("after Close: %v, %v", c.State(), sub.State())
			}
		})
	}
}

// Handlers run one at a time, in order, even under concurrent deliveries
// on several subscriptions.
func TestHandlersNeverOverlap(t *testing.T) {
	srv := startServer(t, nil)
	ctx := ctxT(t)
	c := newClient(t, srv.URL(), client.WebSocket, nil)
	var running, overlaps, total atomic.Int32
	handler := func(client.Publication) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(100 * time.Microsecond) // widen the window an overlap would need
		running.Add(-1)
		total.Add(1)
	}
	for i := range 3 {
		sub, err := c.NewSubscription(fmt.Sprintf("overlap:%d", i), client.SubscriptionConfig{OnPublication: handler})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sub.Subscribe(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			for j := range 50 {
				mustPublish(t, srv.URL(), fmt.Sprintf("overlap:%d", i), j)
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, 20*time.Second, "150 publications", func() bool { return total.Load() == 150 })
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping handler calls", overlaps.Load())
	}
}

// The default HTTP client is the Client's own; Close releases it. A
// caller's client is used as given.
func TestOwnHTTPClient(t *testing.T) {
	srv := startServer(t, nil)
	var requests atomic.Int32
	hc := &http.Client{Transport: countingTransport{&http.Transport{}, &requests}}
	defer hc.CloseIdleConnections()
	c := newClient(t, srv.URL(), client.SSE, func(cfg *client.Config) { cfg.HTTPClient = hc })
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "own:x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if requests.Load() == 0 {
		t.Fatal("the configured HTTP client was not used")
	}
}

type countingTransport struct {
	http.RoundTripper
	n *atomic.Int32
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}
