package client_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

// fakeSSE is a scripted SSE server: GET /poll answers a position for new
// subscriptions, and each GET /sse runs stream with the stream's number and
// its Last-Event-ID.
type fakeSSE struct {
	srv     *httptest.Server
	streams atomic.Int32
	mu      sync.Mutex
	lastIDs []string
}

func newFakeSSE(t *testing.T, stream func(n int, w http.ResponseWriter, r *http.Request)) *fakeSSE {
	f := &fakeSSE{}
	done := make(chan struct{})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/poll":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"publications":[],"next":"E-5","recovered":true}`)
		case "/sse":
			f.mu.Lock()
			f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
			f.mu.Unlock()
			w.Header().Set("Content-Type", "text/event-stream")
			stream(int(f.streams.Add(1)), w, r)
			// Hold the stream open until the client or the test ends it.
			select {
			case <-r.Context().Done():
			case <-done:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() {
		close(done)
		f.srv.Close()
	})
	return f
}

func (f *fakeSSE) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lastIDs...)
}

func write(w http.ResponseWriter, s string) {
	_, _ = io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

// The client resumes a broken stream with the id of the last event it
// received, whatever the line endings, and honours the disconnect event.
func TestSSEResumeAndDisconnect(t *testing.T) {
	f := newFakeSSE(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			write(w, "retry: 10\n\n: hello\n\n")
			write(w, "event: subscribed\r\nid: E-5\r\ndata: {\"type\":\"subscribed\",\"channel\":\"a\",\"epoch\":\"E\",\"offset\":5,\"recoverable\":true,\"was_recovering\":true,\"recovered\":true}\r\n\r\n")
			write(w, "id: E-6\ndata: {\"type\":\"publication\",\"channel\":\"a\",\"offset\":6,\n")
			write(w, "data: \"data\":{\"x\":1},\"time\":1}\n\n")
			write(w, "data: {\"type\":\"publication\",\"channel\":\"a\",\"offset\":0,\"data\":\"ephemeral\",\"time\":2}\n\n")
			write(w, "event: disconnect\ndata: {\"type\":\"disconnect\",\"code\":4000,\"reason\":\"server shutdown\",\"reconnect\":true}\n\n")
		case 2:
			write(w, "event: subscribed\nid: E-6\ndata: {\"type\":\"subscribed\",\"channel\":\"a\",\"epoch\":\"E\",\"offset\":6,\"recoverable\":true,\"was_recovering\":true,\"recovered\":true}\n\n")
			write(w, "event: disconnect\ndata: {\"type\":\"disconnect\",\"code\":4504,\"reason\":\"forced disconnect\",\"reconnect\":false}\n\n")
		}
	})
	c := newClient(t, f.srv.URL, client.SSE, nil)
	var rec recorder
	sub, err := c.NewSubscription("a", rec.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the disconnect for good", func() bool { return c.State() == client.StateDisconnected })
	if ids := f.ids(); len(ids) != 2 || ids[0] != "E-5" || ids[1] != "E-6" {
		t.Fatalf("Last-Event-ID of each stream: %q", ids)
	}
	pubs := rec.waitPubs(t, 2)
	if pubs[0].Offset != 6 || string(pubs[0].Data) != `{"x":1}` || pubs[1].Offset != 0 {
		t.Fatalf("publications %+v", pubs)
	}
	evs := rec.waitSubscribed(t, 2)
	// The first subscribe was from "now": the client's own probe position
	// is no recovery of the user's.
	if evs[0].WasRecovering || evs[0].Position.Offset != 5 || !evs[1].WasRecovering || !evs[1].Recovered || evs[1].Position.Offset != 6 {
		t.Fatalf("subscribed events %+v", evs)
	}
	if f.streams.Load() != 2 {
		t.Fatalf("%d streams", f.streams.Load())
	}
}

// A stream that goes silent is reopened after IdleTimeout.
func TestSSEIdleTimeout(t *testing.T) {
	f := newFakeSSE(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		write(w, "retry: 10\n\n")
	})
	c := newClient(t, f.srv.URL, client.SSE, func(cfg *client.Config) { cfg.IdleTimeout = 100 * time.Millisecond })
	sub, _ := c.NewSubscription("a", client.SubscriptionConfig{})
	_ = sub.Subscribe(ctxT(t))
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a reopened stream", func() bool { return f.streams.Load() >= 3 })
}

// Refused credentials end the client; other HTTP failures are retried.
func TestSSEOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
	}{
		{http.StatusUnauthorized, `{"error":{"code":101,"message":"unauthorized"}}`, true},
		{http.StatusServiceUnavailable, `{"error":{"code":116,"message":"server shutting down"}}`, false},
		{http.StatusBadGateway, `<html>bad gateway</html>`, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			var opens atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/poll" {
					_, _ = io.WriteString(w, `{"publications":[],"next":"E-1","recovered":true}`)
					return
				}
				opens.Add(1)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := newClient(t, srv.URL, client.SSE, nil)
			sub, _ := c.NewSubscription("a", client.SubscriptionConfig{})
			_ = sub.Subscribe(ctxT(t))
			go func() { _ = c.Connect(ctxT(t)) }()
			if tc.permanent {
				testkit.WaitFor(t, 10*time.Second, "the client to stop", func() bool { return c.State() == client.StateDisconnected && opens.Load() == 1 })
				var e *client.Error
				if err := c.Connect(ctxT(t)); !errors.As(err, &e) || e.Code != client.CodeUnauthorized {
					t.Fatalf("Connect: %v", err)
				}
				return
			}
			testkit.WaitFor(t, 10*time.Second, "retries", func() bool { return opens.Load() >= 3 })
			if c.State() == client.StateDisconnected {
				t.Fatal("gave up on a temporary failure")
			}
			_ = c.Close()
		})
	}
}

// A subscription over the server's channel limit is refused on every
// transport, and the others carry on.
func TestSubscriptionLimit(t *testing.T) {
	srv := startServer(t, func(c *serverConfig) { c.MaxChannelsPerConnection = 3 })
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			var subs []*client.Subscription
			for i := range 4 {
				sub, err := c.NewSubscription(fmt.Sprintf("limit-%s:%d", tr, i), client.SubscriptionConfig{})
				if err != nil {
					t.Fatal(err)
				}
				err = sub.Subscribe(ctx)
				if i < 3 && err != nil || i == 3 && codeOf(err) != client.CodeLimitExceeded {
					t.Fatalf("subscription %d: %v", i, err)
				}
				subs = append(subs, sub)
			}
			for _, sub := range subs[:3] {
				if sub.State() != client.SubscriptionSubscribed {
					t.Fatalf("%s: %v", sub.Channel(), sub.State())
				}
			}
		})
	}
}
