package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

const (
	testAdminPassword = "correct horse battery staple"
	testAdminSecret   = "0123456789abcdef0123456789abcdef"
)

// adminServer serves the admin API of a dev node, the server API beside it
// (with testKey), as the server mounts them.
func adminServer(t *testing.T, cfg AdminConfig) (*httptest.Server, *node.Node) {
	t.Helper()
	if cfg.Node == nil {
		cfg.Node = newNode(t, node.Config{Dev: true})
	}
	if cfg.Password == "" {
		cfg.Password = testAdminPassword
	}
	if cfg.Tokens == nil {
		cfg.Tokens = testAdminTokens(t, testAdminSecret, 0)
	}
	a, err := NewAdmin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(AdminLoginPath, a)
	mux.Handle(AdminRefreshPath, a)
	mux.Handle(AdminPrefix, a)
	mux.Handle(Prefix, New(Config{Node: cfg.Node, Key: testKey}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, cfg.Node
}

func login(t *testing.T, url, password string) response {
	t.Helper()
	body, _ := json.Marshal(loginRequest{Password: password})
	return post(t, url+AdminLoginPath, "", string(body))
}

func adminToken(t *testing.T, url string) string {
	t.Helper()
	var res LoginResult
	wantOK(t, login(t, url, testAdminPassword), &res)
	if res.Token == "" || res.ExpiresIn != int(DefaultAdminSessionTTL.Seconds()) {
		t.Fatalf("login result %+v", res)
	}
	return res.Token
}

func adminCall(t *testing.T, url, token, method, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+AdminPrefix+method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func testAdminTokens(t *testing.T, secret string, ttl time.Duration) *AdminTokens {
	t.Helper()
	a, err := NewAdminTokens([]byte(secret), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewAdminRefusesWeakConfig(t *testing.T) {
	if _, err := NewAdmin(AdminConfig{Tokens: testAdminTokens(t, testAdminSecret, 0)}); err == nil {
		t.Error("no password accepted")
	}
	if _, err := NewAdmin(AdminConfig{Password: "pw"}); err == nil {
		t.Error("no tokens accepted")
	}
	if _, err := NewAdminTokens([]byte("short"), 0); err == nil {
		t.Error("a short secret accepted")
	}
}

func TestAdminAuth(t *testing.T) {
	srv, _ := adminServer(t, AdminConfig{})
	wantError(t, login(t, srv.URL, "wrong"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	wantError(t, login(t, srv.URL, ""), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	r := do(t, mustRequest(t, http.MethodGet, srv.URL+AdminLoginPath))
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET login: %d", r.status)
	}
	token := adminToken(t, srv.URL)

	for name, c := range map[string]struct {
		auth string
		code uint32
	}{
		"missing":       {"", protocol.ErrUnauthorized.Code},
		"api key":       {"apikey " + testKey, protocol.ErrUnauthorized.Code},
		"api key token": {"Bearer " + testKey, protocol.ErrUnauthorized.Code},
		"garbage":       {"Bearer x.y.z", protocol.ErrUnauthorized.Code},
		"tampered":      {"Bearer " + token[:len(token)-2] + "AA", protocol.ErrUnauthorized.Code},
		"other secret": {"Bearer " + mustMint(t, testAdminTokens(t, strings.Repeat("x", 32), time.Hour), time.Now()),
			protocol.ErrUnauthorized.Code},
		"expired": {"Bearer " + mustMint(t, testAdminTokens(t, testAdminSecret, time.Minute), time.Now().Add(-time.Hour)),
			protocol.ErrTokenExpired.Code},
	} {
		t.Run(name, func(t *testing.T) {
			req := mustRequest(t, http.MethodPost, srv.URL+AdminPrefix+"nodes")
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			r := do(t, req)
			wantError(t, r, http.StatusUnauthorized, c.code)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Unknown methods are hidden from callers without a session.
	wantError(t, adminCall(t, srv.URL, "", "nope", "{}"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	wantError(t, adminCall(t, srv.URL, token, "nope", "{}"), http.StatusNotFound, protocol.ErrMethodNotFound.Code)
	// The admin token opens nothing on the server API.
	req := mustRequest(t, http.MethodPost, srv.URL+Prefix+"info")
	req.Header.Set("Authorization", "Bearer "+token)
	wantError(t, do(t, req), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
}

// A valid session is renewed for a full lifetime from now; an expired one
// is refused with 109, so the UI sends its user back to the login.
func TestAdminRefresh(t *testing.T) {
	tokens := testAdminTokens(t, testAdminSecret, time.Hour)
	srv, _ := adminServer(t, AdminConfig{Tokens: tokens})
	refresh := func(token string) response {
		t.Helper()
		req := mustRequest(t, http.MethodPost, srv.URL+AdminRefreshPath)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return do(t, req)
	}
	old := mustMint(t, tokens, time.Now().Add(-50*time.Minute))
	oldExp, err := tokens.Verify(old)
	if err != nil {
		t.Fatal(err)
	}
	var res LoginResult
	wantOK(t, refresh(old), &res)
	exp, err := tokens.Verify(res.Token)
	if err != nil || res.ExpiresIn != 3600 || exp.Expires.Sub(oldExp.Expires) < 45*time.Minute || !exp.Login.Equal(oldExp.Login) {
		t.Fatalf("renewed %+v expiring %v (the old one %v): %v", res, exp, oldExp, err)
	}
	wantOK(t, adminCall(t, srv.URL, res.Token, "nodes", "{}"), &InfoResult{})

	expired := mustMint(t, tokens, time.Now().Add(-2*time.Hour))
	wantError(t, refresh(expired), http.StatusUnauthorized, protocol.ErrTokenExpired.Code)
	wantError(t, refresh(""), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	other := mustMint(t, testAdminTokens(t, strings.Repeat("x", 32), time.Hour), time.Now())
	wantError(t, refresh(other), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	// A valid token of a session that logged in too long ago is not renewed.
	stale, err := tokens.mint(time.Now(), time.Now().Add(-MaxAdminSession-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, refresh(stale), http.StatusUnauthorized, protocol.ErrTokenExpired.Code)
	req := mustRequest(t, http.MethodGet, srv.URL+AdminRefreshPath)
	req.Header.Set("Authorization", "Bearer "+res.Token)
	if r := do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET refresh: %d", r.status)
	}
}

// Without a filter the connections method lists every connection, at most
// node.MaxListedConnections per node, and says when a node had more.
func TestAdminConnectionsUnfiltered(t *testing.T) {
	srv, n := adminServer(t, AdminConfig{})
	token := adminToken(t, srv.URL)
	open := func(count int) {
		for i := range count {
			s, err := n.NewSession(streamTransport{}, node.SessionOptions{Credentials: node.Credentials{UserID: fmt.Sprint("u", i)}, Authenticated: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Finish)
		}
	}
	var conns node.ConnectionsResult
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{}`), &conns)
	if len(conns.Connections) != 0 || conns.Truncated {
		t.Fatalf("no connections: %+v", conns)
	}
	open(3)
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{}`), &conns)
	if len(conns.Connections) != 3 || conns.Truncated {
		t.Fatalf("three connections: %+v", conns)
	}
	open(node.MaxListedConnections - 3)
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{}`), &conns)
	if len(conns.Connections) != node.MaxListedConnections || conns.Truncated {
		t.Fatalf("exactly the bound: %d connections, truncated %v", len(conns.Connections), conns.Truncated)
	}
	open(1)
	r := adminCall(t, srv.URL, token, "connections", `{}`)
	wantOK(t, r, &conns)
	if len(conns.Connections) != node.MaxListedConnections || !conns.Truncated || !strings.Contains(string(r.body), `"truncated":true`) {
		t.Fatalf("past the bound: %d connections, truncated %v", len(conns.Connections), conns.Truncated)
	}
	// A filter still narrows, and the server API still wants one.
	conns = node.ConnectionsResult{}
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{"user":"u7"}`), &conns)
	if len(conns.Connections) != 1 || conns.Connections[0].User != "u7" || conns.Truncated {
		t.Fatalf("by user: %+v", conns)
	}
	wantError(t, post(t, srv.URL+Prefix+"connections", testKey, `{}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func mustMint(t *testing.T, a *AdminTokens, now time.Time) string {
	t.Helper()
	tok, err := a.mint(now, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAdminLoginRateLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	srv, _ := adminServer(t, AdminConfig{Now: func() time.Time { return now }})
	for range loginBurst {
		wantError(t, login(t, srv.URL, "guess"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	}
	r := login(t, srv.URL, testAdminPassword)
	wantError(t, r, http.StatusTooManyRequests, protocol.ErrTooManyRequests.Code)
	if r.header.Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q, want 10", r.header.Get("Retry-After"))
	}
	now = now.Add(loginEvery)
	adminToken(t, srv.URL)
	wantError(t, login(t, srv.URL, testAdminPassword), http.StatusTooManyRequests, protocol.ErrTooManyRequests.Code)
}

func TestAdminMethods(t *testing.T) {
	srv, n := adminServer(t, AdminConfig{})
	token := adminToken(t, srv.URL)
	alice, err := n.NewSession(streamTransport{}, node.SessionOptions{Credentials: node.Credentials{UserID: "alice"}, Authenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alice.Finish)
	if err := alice.SubscribeStream(context.Background(), []string{"chat:a", "chat:b"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	subscribe(t, n, "chat:a")

	var nodes InfoResult
	wantOK(t, adminCall(t, srv.URL, token, "nodes", "{}"), &nodes)
	if nodes.Node != n.ID() || len(nodes.Nodes) != 1 || nodes.Nodes[0].NumClients != 2 {
		t.Fatalf("nodes %+v", nodes)
	}

	var channels node.ClusterChannelsResult
	wantOK(t, adminCall(t, srv.URL, token, "channels", `{"pattern":"chat:*"}`), &channels)
	if channels.Channels["chat:a"].NumSubscribers != 2 || channels.Channels["chat:b"].NumSubscribers != 1 || len(channels.Channels) != 2 {
		t.Fatalf("channels %+v", channels)
	}
	wantError(t, adminCall(t, srv.URL, token, "channels", `{"pattern":"["}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)

	var conns node.ConnectionsResult
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{"user":"alice"}`), &conns)
	if len(conns.Connections) != 1 || conns.Connections[0].Client != alice.ID() {
		t.Fatalf("alice's connections %+v", conns)
	}
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{"channel":"chat:a"}`), &conns)
	if len(conns.Connections) != 2 {
		t.Fatalf("chat:a's connections %+v", conns)
	}
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{"client":"`+alice.ID()+`"}`), &conns)
	if len(conns.Connections) != 1 {
		t.Fatalf("by client %+v", conns)
	}

	var pub protocol.PublishResult
	wantOK(t, adminCall(t, srv.URL, token, "publish", `{"channel":"chat:a","data":{"text":"hi"}}`), &pub)
	if pub.Offset != 1 {
		t.Fatalf("publish %+v", pub)
	}
	var hist protocol.HistoryResult
	wantOK(t, adminCall(t, srv.URL, token, "history", `{"channel":"chat:a","limit":10}`), &hist)
	if len(hist.Publications) != 1 || string(hist.Publications[0].Data) != `{"text":"hi"}` {
		t.Fatalf("history %+v", hist)
	}
	var pres protocol.PresenceResult
	wantOK(t, adminCall(t, srv.URL, token, "presence", `{"channel":"chat:a"}`), &pres)
	if len(pres.Clients) != 2 || pres.Clients[alice.ID()].User != "alice" {
		t.Fatalf("presence %+v", pres)
	}
	var stats protocol.PresenceStatsResult
	wantOK(t, adminCall(t, srv.URL, token, "presence_stats", `{"channel":"chat:a"}`), &stats)
	if stats.NumClients != 2 || stats.NumUsers != 1 {
		t.Fatalf("presence stats %+v", stats)
	}

	wantError(t, adminCall(t, srv.URL, token, "unsubscribe", `{"channel":"chat:b"}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantOK(t, adminCall(t, srv.URL, token, "unsubscribe", `{"user":"alice","channel":"chat:b"}`), &struct{}{})
	testkit.WaitFor(t, 5*time.Second, "alice unsubscribed from chat:b", func() bool {
		_, ok := n.Channels()["chat:b"]
		return !ok
	})
	wantOK(t, adminCall(t, srv.URL, token, "connections", `{"user":"alice"}`), &conns)
	if len(conns.Connections) != 1 || len(conns.Connections[0].Channels) != 1 || conns.Connections[0].Channels[0] != "chat:a" {
		t.Fatalf("alice after unsubscribe %+v", conns)
	}

	wantError(t, adminCall(t, srv.URL, token, "disconnect", `{}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantOK(t, adminCall(t, srv.URL, token, "disconnect", `{"client":"`+alice.ID()+`"}`), &struct{}{})
	testkit.WaitFor(t, 5*time.Second, "alice disconnected", func() bool { return alice.Closing() != nil })

	r := do(t, mustRequest(t, http.MethodGet, srv.URL+AdminPrefix+"nodes"))
	wantError(t, r, http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	req := mustRequest(t, http.MethodGet, srv.URL+AdminPrefix+"nodes")
	req.Header.Set("Authorization", "Bearer "+token)
	if r := do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET nodes: %d", r.status)
	}
}
