package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/testkit"
)

// testSecret signs the tokens of authServer.
const testSecret = "client-tests-hmac-secret-0123456789"

// authServer runs a server that refuses anonymous clients and accepts
// tokens signed with testSecret. Namespace "auth" is open to authenticated
// users; "private" needs a subscription token to subscribe.
func authServer(t *testing.T) *testServer {
	return startServer(t, func(c *server.Config) {
		c.Dev = false
		c.Auth.HMACSecret = testSecret
		open := node.DevNamespace("auth")
		open.Subscribe, open.Publish, open.HistoryAccess, open.PresenceAccess = node.AccessAuthenticated, node.AccessAuthenticated, node.AccessAuthenticated, node.AccessAuthenticated
		private := node.DevNamespace("private")
		private.Private = true
		c.Namespaces = []node.NamespaceOptions{open, private}
	})
}

// mint signs a token with testSecret.
func mint(t testing.TB, o auth.MintOptions) string {
	t.Helper()
	o.Secret = []byte(testSecret)
	tok, err := auth.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenSource is a Config.GetToken minting tokens for user that live ttl,
// counting its calls.
type tokenSource struct {
	user  string
	ttl   time.Duration
	calls atomic.Int32
}

func (s *tokenSource) get(context.Context) (string, error) {
	s.calls.Add(1)
	return auth.Mint(auth.MintOptions{Secret: []byte(testSecret), UserID: s.user, TTL: s.ttl})
}

// disconnects records the client's OnDisconnected events.
type disconnects struct {
	mu     sync.Mutex
	events []client.DisconnectedEvent
}

func (d *disconnects) record(e client.DisconnectedEvent) {
	d.mu.Lock()
	d.events = append(d.events, e)
	d.mu.Unlock()
}

func (d *disconnects) wait(t *testing.T, timeout time.Duration) client.DisconnectedEvent {
	t.Helper()
	testkit.WaitFor(t, timeout, "OnDisconnected", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.events) > 0
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.events[0]
}

// Every transport authenticates with the token, and the server knows the
// client as its user.
func TestTokenTransports(t *testing.T) {
	srv := authServer(t)
	tok := mint(t, auth.MintOptions{UserID: "alice", TTL: time.Hour})
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			var user atomic.Value
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.Token = tok
				cfg.OnConnected = func(e client.ConnectedEvent) { user.Store(e.User) }
			})
			channel := "auth:" + tr.String()
			recs := subscribeAll(t, c, []string{channel})
			if tr == client.WebSocket && user.Load() != "alice" {
				t.Fatalf("connected as %q", user.Load())
			}
			mustPublish(t, srv.URL(), channel, 0)
			if _, err := c.Publish(ctx, channel, []byte(`{"seq":1}`)); err != nil {
				t.Fatal(err)
			}
			pubs := recs[channel].waitPubs(t, 2)
			if got := seqs(t, pubs); got[0] != 0 || got[1] != 1 {
				t.Fatalf("seqs %v", got)
			}
			if tr == client.WebSocket && (pubs[1].Info == nil || pubs[1].Info.User != "alice") {
				t.Fatalf("own publication's info %+v", pubs[1].Info)
			}
			if _, err := c.History(ctx, channel, client.HistoryOptions{}); err != nil {
				t.Fatalf("history as an authenticated user: %v", err)
			}
		})
	}
}

// Without a token, or with one the server cannot verify, every transport
// stops at the first refusal with ErrUnauthorized rather than retrying.
func TestTokenRefused(t *testing.T) {
	srv := authServer(t)
	forged, err := auth.Mint(auth.MintOptions{Secret: []byte("another-secret-of-at-least-32-bytes"), UserID: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range transports {
		for name, tok := range map[string]string{"none": "", "forged": forged} {
			t.Run(tr.String()+"/"+name, func(t *testing.T) {
				var requests atomic.Int32
				hc := &http.Client{Transport: countingTransport{&http.Transport{}, &requests}}
				defer hc.CloseIdleConnections()
				var ds disconnects
				c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
					cfg.Token = tok
					cfg.HTTPClient = hc
					cfg.OnDisconnected = ds.record
				})
				// SSE and polling make no request before a subscription needs one.
				sub, err := c.NewSubscription("auth:refused", client.SubscriptionConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				err = c.Connect(ctxT(t))
				if !errors.Is(err, client.ErrUnauthorized) || codeOf(err) != client.CodeUnauthorized {
					t.Fatalf("Connect: %v", err)
				}
				if e := ds.wait(t, 5*time.Second); !errors.Is(e.Err, client.ErrUnauthorized) {
					t.Fatalf("OnDisconnected: %+v", e)
				}
				// Disconnected means the run loop ended: no retry follows.
				if c.State() != client.StateDisconnected || requests.Load() != 1 {
					t.Fatalf("state %v after %d requests", c.State(), requests.Load())
				}
			})
		}
	}
}

// GetToken errors that match ErrUnauthorized stop the client; others are
// retried.
func TestGetTokenErrors(t *testing.T) {
	srv := authServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			var calls atomic.Int32
			loggedOut := fmt.Errorf("user logged out: %w", client.ErrUnauthorized)
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.GetToken = func(context.Context) (string, error) {
					if calls.Add(1) < 3 {
						return "", errors.New("backend unavailable")
					}
					return "", loggedOut
				}
			})
			sub, err := c.NewSubscription("auth:gettoken", client.SubscriptionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := c.Connect(ctxT(t)); !errors.Is(err, loggedOut) {
				t.Fatalf("Connect: %v", err)
			}
			if calls.Load() != 3 {
				t.Fatalf("GetToken called %d times", calls.Load())
			}
		})
	}
}

// A token that lives 3 seconds, refreshed through GetToken: a steady
// stream keeps arriving across many refreshes on every transport, with
// nothing lost and nothing repeated.
func TestTokenRefresh(t *testing.T) {
	const total = 400 // 8 s at 20 ms
	srv := authServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			src := &tokenSource{user: "refresher", ttl: 3 * time.Second}
			var errs sync.Map
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.GetToken = src.get
				cfg.OnError = func(e client.ErrorEvent) { errs.Store(e.Err.Error(), true) }
			})
			channel := "auth:refresh-" + tr.String()
			recs := subscribeAll(t, c, []string{channel})
			pub := startPublisher(t, srv.URL, []string{channel}, total, 20*time.Millisecond)
			select {
			case <-pub.done:
			case <-time.After(60 * time.Second):
				t.Fatal("publisher did not finish")
			}
			testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("all %d publications", total), func() bool { return received(recs) >= total })
			resumes := checkStream(t, recs, total)
			if n := src.calls.Load(); n < 3 {
				t.Fatalf("GetToken called %d times in 8 s of 3 s tokens", n)
			}
			if c.State() != client.StateConnected {
				t.Fatalf("state %v", c.State())
			}
			errs.Range(func(k, _ any) bool { t.Logf("%v: OnError: %v", tr, k); return true })
			t.Logf("%v: %d publications, %d GetToken calls, %d resumes", tr, total, src.calls.Load(), resumes)
		})
	}
}

// A Token that expired already is replaced from GetToken on every
// transport, without giving up.
func TestExpiredTokenReplaced(t *testing.T) {
	srv := authServer(t)
	expired := mint(t, auth.MintOptions{UserID: "late", TTL: time.Minute, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			src := &tokenSource{user: "late", ttl: time.Hour}
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.Token = expired
				cfg.GetToken = src.get
			})
			channel := "auth:replaced-" + tr.String()
			recs := subscribeAll(t, c, []string{channel})
			mustPublish(t, srv.URL(), channel, 0)
			recs[channel].waitPubs(t, 1)
			if n := src.calls.Load(); n != 1 {
				t.Fatalf("GetToken called %d times", n)
			}
		})
	}
}

// Without GetToken, the client stops with ErrTokenExpired once its token
// expires.
func TestTokenExpires(t *testing.T) {
	srv := authServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			var ds disconnects
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.Token = mint(t, auth.MintOptions{UserID: "shortlived", TTL: 3 * time.Second})
				cfg.OnDisconnected = ds.record
			})
			subscribeAll(t, c, []string{"auth:expires-" + tr.String()})
			e := ds.wait(t, 15*time.Second)
			if !errors.Is(e.Err, client.ErrTokenExpired) {
				t.Fatalf("OnDisconnected: %+v", e)
			}
			if c.State() != client.StateDisconnected {
				t.Fatalf("state %v", c.State())
			}
		})
	}
}

// Private channels need a subscription token, static or from GetToken;
// without one the subscription is refused.
func TestSubscriptionTokens(t *testing.T) {
	srv := authServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			px := newProxy(t, srv.Addr())
			c := newClient(t, px.URL(), tr, func(cfg *client.Config) {
				cfg.Token = mint(t, auth.MintOptions{UserID: "bob", TTL: time.Hour})
			})
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			static, fetched := "private:static-"+tr.String(), "private:fetched-"+tr.String()
			var calls atomic.Int32
			cfgs := map[string]client.SubscriptionConfig{
				static: {Token: mint(t, auth.MintOptions{UserID: "bob", Channel: static, TTL: time.Hour})},
				fetched: {GetToken: func(_ context.Context, channel string) (string, error) {
					calls.Add(1)
					return auth.Mint(auth.MintOptions{Secret: []byte(testSecret), UserID: "bob", Channel: channel, TTL: time.Hour})
				}},
			}
			recs := map[string]*recorder{}
			for ch, cfg := range cfgs {
				r := &recorder{}
				rc := r.config()
				rc.Token, rc.GetToken = cfg.Token, cfg.GetToken
				sub, err := c.NewSubscription(ch, rc)
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctx); err != nil {
					t.Fatalf("%s: %v", ch, err)
				}
				recs[ch] = r
			}
			if calls.Load() == 0 {
				t.Fatal("GetToken not called")
			}
			for ch := range recs {
				mustPublish(t, srv.URL(), ch, 0)
			}
			for _, r := range recs {
				r.waitPubs(t, 1)
			}
			if tr == client.WebSocket || tr == client.SSE {
				// A new connection fetches a fresh subscription token.
				px.cut()
				testkit.WaitFor(t, 10*time.Second, "GetToken after the reconnect", func() bool { return calls.Load() >= 2 })
				for ch := range recs {
					mustPublish(t, srv.URL(), ch, 1)
				}
				for ch, r := range recs {
					if got := seqs(t, r.waitPubs(t, 2)); got[1] != 1 {
						t.Fatalf("%s after the reconnect: %v", ch, got)
					}
				}
			}

			denied, err := c.NewSubscription("private:none-"+tr.String(), client.SubscriptionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := denied.Subscribe(ctx); codeOf(err) != client.CodePermissionDenied {
				t.Fatalf("private channel without a token: %v", err)
			}
			theirs, err := c.NewSubscription("private:theirs-"+tr.String(), client.SubscriptionConfig{
				Token: mint(t, auth.MintOptions{UserID: "bob", Channel: "private:other"}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := theirs.Subscribe(ctx); err == nil {
				t.Fatal("a token for another channel was accepted")
			}
			if c.State() != client.StateConnected {
				t.Fatalf("state %v after refusals", c.State())
			}
		})
	}
}
