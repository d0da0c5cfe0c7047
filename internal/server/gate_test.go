package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

func mint(t *testing.T, o auth.MintOptions) string {
	t.Helper()
	o.Secret = []byte(testSecret)
	tok, err := auth.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authConfig is a server that needs tokens: namespace "room" is open to
// authenticated users.
func authConfig() Config {
	cfg := testConfig()
	cfg.Auth.HMACSecret = testSecret
	cfg.Namespaces = []node.NamespaceOptions{{
		Name: "room", HistorySize: 10, HistoryTTL: time.Hour, Presence: true,
		Subscribe: node.AccessAuthenticated, Publish: node.AccessAuthenticated,
		HistoryAccess: node.AccessAuthenticated, PresenceAccess: node.AccessAuthenticated,
	}}
	return cfg
}

// request sends a request with the given headers and returns the status,
// the error code of a JSON error body (0 without one) and the headers.
func (r *running) request(t *testing.T, method, path string, header http.Header, body string) (int, uint32, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	var e struct{ Error protocol.Error }
	_ = json.Unmarshal(b, &e)
	return res.StatusCode, e.Error.Code, res.Header
}

func TestTokenSources(t *testing.T) {
	cfg := authConfig()
	cfg.TokenCookie = "herald_token"
	r := start(t, cfg)
	good := mint(t, auth.MintOptions{UserID: "alice", TTL: time.Hour})
	expired := mint(t, auth.MintOptions{UserID: "alice", TTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	const poll = "/poll?channel=room:1&timeout=0"
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		code   uint32
	}{
		{"bearer header", poll, http.Header{"Authorization": {"Bearer " + good}}, 200, 0},
		{"query parameter", poll + "&token=" + good, nil, 200, 0},
		{"cookie", poll, http.Header{"Cookie": {"herald_token=" + good}}, 200, 0},
		{"no token", poll, nil, 401, protocol.ErrUnauthorized.Code},
		{"expired", poll, http.Header{"Authorization": {"Bearer " + expired}}, 401, protocol.ErrTokenExpired.Code},
		{"garbage", poll, http.Header{"Authorization": {"Bearer not.a.jwt"}}, 401, protocol.ErrUnauthorized.Code},
		{"wrong cookie name", poll, http.Header{"Cookie": {"other=" + good}}, 401, protocol.ErrUnauthorized.Code},
		{"client publish", "/publish", http.Header{"Authorization": {"Bearer " + good}}, 200, 0},
		{"client publish without token", "/publish", nil, 401, protocol.ErrUnauthorized.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, body := http.MethodGet, ""
			if tc.path == "/publish" {
				method, body = http.MethodPost, `{"channel":"room:1","data":{"hi":1}}`
			}
			status, code, _ := r.request(t, method, tc.path, tc.header, body)
			if status != tc.status || code != tc.code {
				t.Errorf("status %d code %d, want %d %d", status, code, tc.status, tc.code)
			}
		})
	}
}

// TestCookieTokenOnEveryTransport: the token_cookie authenticates a
// WebSocket, an SSE stream, a poll and a client publish alike; and since a
// browser attaches it to a hostile page's requests too, the same requests
// from a page of another origin are refused with 403 and 103, without CORS
// headers, before the cookie is looked at.
func TestCookieTokenOnEveryTransport(t *testing.T) {
	cfg := authConfig()
	cfg.TokenCookie = "herald_token"
	cfg.AllowedOrigins = []string{"https://app.example"}
	r := start(t, cfg)
	cookie := "herald_token=" + mint(t, auth.MintOptions{UserID: "carol", TTL: time.Hour})
	wsURL := "ws" + strings.TrimPrefix(r.url, "http") + "/ws"
	// stream opens path and returns its status and headers without reading
	// the body, which for SSE never ends.
	stream := func(t *testing.T, method, path string, header http.Header, body string) (int, uint32, http.Header) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, r.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e struct{ Error protocol.Error }
		if res.StatusCode != http.StatusOK {
			_ = json.NewDecoder(res.Body).Decode(&e)
		}
		return res.StatusCode, e.Error.Code, res.Header
	}
	publish := `{"channel":"room:1","data":{"hi":1}}`

	for name, origin := range map[string]string{"no origin": "", "allowed origin": "https://app.example"} {
		t.Run(name, func(t *testing.T) {
			header := func() http.Header {
				h := http.Header{"Cookie": {cookie}}
				if origin != "" {
					h.Set("Origin", origin)
				}
				return h
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := cws.Dial(ctx, wsURL, &cws.DialOptions{HTTPHeader: header()})
			if err != nil {
				t.Fatalf("WebSocket with the cookie: %v", err)
			}
			defer c.CloseNow()
			if err := c.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect","params":{}}`)); err != nil {
				t.Fatal(err)
			}
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Result struct{ User string }
				Error  *protocol.Error
			}
			if err := json.Unmarshal(b, &rep); err != nil || rep.Error != nil || rep.Result.User != "carol" {
				t.Errorf("WebSocket connect with the cookie: %s, want user carol", b)
			}
			status, _, h := stream(t, http.MethodGet, "/sse?channel=room:1", header(), "")
			if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
				t.Errorf("SSE with the cookie: %d %q, want an event stream", status, h.Get("Content-Type"))
			}
			if status, code, _ := stream(t, http.MethodGet, "/poll?channel=room:1&timeout=0", header(), ""); status != http.StatusOK {
				t.Errorf("poll with the cookie: %d %d", status, code)
			}
			if status, code, _ := stream(t, http.MethodPost, "/publish", header(), publish); status != http.StatusOK {
				t.Errorf("publish with the cookie: %d %d", status, code)
			}
		})
	}

	t.Run("another origin", func(t *testing.T) {
		header := func() http.Header {
			return http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}
		}
		refused := func(what string, status int, code uint32, h http.Header) {
			t.Helper()
			if status != http.StatusForbidden || code != protocol.ErrPermissionDenied.Code || h.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s with the cookie from another origin: %d %d, CORS %q; want 403 103 and no CORS", what, status, code, h.Get("Access-Control-Allow-Origin"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, res, err := cws.Dial(ctx, wsURL, &cws.DialOptions{HTTPHeader: header()})
		if err == nil {
			c.CloseNow()
			t.Fatal("WebSocket with the cookie from another origin was upgraded")
		}
		var e struct{ Error protocol.Error }
		if res != nil {
			_ = json.NewDecoder(res.Body).Decode(&e)
			refused("WebSocket", res.StatusCode, e.Error.Code, res.Header)
		} else {
			t.Errorf("WebSocket from another origin: no HTTP answer: %v", err)
		}
		for _, tc := range []struct{ what, method, path, body string }{
			{"SSE", http.MethodGet, "/sse?channel=room:1", ""},
			{"poll", http.MethodGet, "/poll?channel=room:1&timeout=0", ""},
			{"publish", http.MethodPost, "/publish", publish},
		} {
			status, code, h := stream(t, tc.method, tc.path, header(), tc.body)
			refused(tc.what, status, code, h)
		}
	})
}

func TestWebSocketTokenInHandshakeOrConnect(t *testing.T) {
	r := start(t, authConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok := mint(t, auth.MintOptions{UserID: "bob", TTL: time.Hour})
	wsURL := "ws" + strings.TrimPrefix(r.url, "http") + "/ws"

	connect := func(t *testing.T, url string, opts *cws.DialOptions, params string) (protocol.Reply, *cws.Conn) {
		t.Helper()
		c, _, err := cws.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		if err := c.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect","params":`+params+`}`)); err != nil {
			t.Fatal(err)
		}
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rep protocol.Reply
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return rep, c
	}
	userOf := func(rep protocol.Reply) string {
		m, _ := rep.Result.(map[string]any)
		u, _ := m["user"].(string)
		return u
	}
	if rep, _ := connect(t, wsURL, &cws.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}, `{}`); userOf(rep) != "bob" {
		t.Errorf("token in handshake header: reply %+v", rep)
	}
	if rep, _ := connect(t, wsURL+"?token="+tok, nil, `{}`); userOf(rep) != "bob" {
		t.Errorf("token in handshake query: reply %+v", rep)
	}
	if rep, _ := connect(t, wsURL, nil, `{"token":"`+tok+`"}`); userOf(rep) != "bob" {
		t.Errorf("token in connect command: reply %+v", rep)
	}
	rep, c := connect(t, wsURL, nil, `{}`)
	if rep.Error == nil || rep.Error.Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("no token at all: reply %+v, want error 101", rep)
	}
	_, _, err := c.Read(ctx)
	if got := cws.CloseStatus(err); int(got) != int(protocol.DisconnectUnauthorized.Code) {
		t.Errorf("closed with %v (%v), want %d", got, err, protocol.DisconnectUnauthorized.Code)
	}
	// A bad token in the handshake is refused before the upgrade.
	_, res, err := cws.Dial(ctx, wsURL+"?token=garbage", nil)
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad handshake token: %v, %v; want 401", err, res)
	}
}

func TestOriginAllowListAndCORS(t *testing.T) {
	cfg := testConfig()
	cfg.AllowAnonymous = true
	cfg.AllowedOrigins = []string{"https://app.example"}
	cfg.Namespaces = []node.NamespaceOptions{{Name: "", HistorySize: 10, HistoryTTL: time.Hour, Subscribe: node.AccessAnyone, Publish: node.AccessAnyone}}
	r := start(t, cfg)
	good, evil := http.Header{"Origin": {"https://app.example"}}, http.Header{"Origin": {"https://evil.example"}}

	for _, path := range []string{"/poll?channel=a&timeout=0", "/sse?channel=a"} {
		status, code, _ := r.request(t, http.MethodGet, path, evil, "")
		if status != http.StatusForbidden || code != protocol.ErrPermissionDenied.Code {
			t.Errorf("%s from another origin: %d %d, want 403 103", path, status, code)
		}
	}
	status, code, _ := r.request(t, http.MethodPost, "/publish", evil, `{"channel":"a","data":1}`)
	if status != http.StatusForbidden || code != protocol.ErrPermissionDenied.Code {
		t.Errorf("publish from another origin: %d %d, want 403 103", status, code)
	}
	status, _, h := r.request(t, http.MethodGet, "/poll?channel=a&timeout=0", good, "")
	if status != http.StatusOK || h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("poll from an allowed origin: %d, CORS headers %v", status, h)
	}
	preflight := http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization,content-type"}}
	status, _, h = r.request(t, http.MethodOptions, "/publish", preflight, "")
	if status != http.StatusNoContent || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", status, h)
	}
	preflight.Set("Origin", "https://evil.example")
	if status, _, _ = r.request(t, http.MethodOptions, "/publish", preflight, ""); status != http.StatusForbidden {
		t.Errorf("preflight from another origin: %d, want 403", status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(r.url, "http") + "/ws"
	_, res, err := cws.Dial(ctx, wsURL, &cws.DialOptions{HTTPHeader: evil})
	if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin WebSocket upgrade: %v %v, want 403", err, res)
	}
	c, _, err := cws.Dial(ctx, wsURL, &cws.DialOptions{HTTPHeader: good})
	if err != nil {
		t.Fatalf("WebSocket from an allowed origin: %v", err)
	}
	c.CloseNow()
}

func TestConnectionRatePerAddress(t *testing.T) {
	cfg := testConfig()
	cfg.ConnectionRate, cfg.ConnectionBurst = 0.001, 2
	cfg.TrustedProxies = []string{"127.0.0.1"}
	r := start(t, cfg)
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	// Refused for want of a token, but counted: the limit comes first.
	for i := range 2 {
		if status, _, _ := r.request(t, http.MethodGet, "/sse?channel=a", from("203.0.113.7"), ""); status != http.StatusUnauthorized {
			t.Fatalf("stream %d: status %d, want 401", i, status)
		}
	}
	status, code, h := r.request(t, http.MethodGet, "/sse?channel=a", from("203.0.113.7"), "")
	if status != http.StatusTooManyRequests || code != protocol.ErrTooManyRequests.Code || h.Get("Retry-After") == "" {
		t.Errorf("third stream: %d %d %v, want 429 111 with Retry-After", status, code, h)
	}
	if status, _, _ := r.request(t, http.MethodGet, "/ws", from("203.0.113.7"), ""); status != http.StatusTooManyRequests {
		t.Errorf("WebSocket from the same address: %d, want 429", status)
	}
	if status, _, _ := r.request(t, http.MethodGet, "/sse?channel=a", from("203.0.113.8"), ""); status != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401 (not limited)", status)
	}
	if status, _, _ := r.request(t, http.MethodGet, "/poll?channel=a", from("203.0.113.7"), ""); status != http.StatusUnauthorized {
		t.Errorf("a poll from the limited address: %d, want 401 (polls are not connections)", status)
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := parsePrefixes([]string{"10.0.0.0/8", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},                           // untrusted peer: header ignored
		{"127.0.0.1:5000", "203.0.113.9", "203.0.113.9"},                         // trusted proxy
		{"127.0.0.1:5000", "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"}, // chain of proxies
		{"127.0.0.1:5000", "garbage, 203.0.113.9", "203.0.113.9"},                // forged left part skipped
		{"127.0.0.1:5000", "203.0.113.9, garbage", "127.0.0.1"},                  // malformed nearest hop
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"[::ffff:127.0.0.1]:5000", "203.0.113.9", "203.0.113.9"},
	} {
		req := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientAddr(req, trusted); got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s via %q: %v, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	if _, err := parsePrefixes([]string{"not-an-address"}); err == nil {
		t.Error("bad trusted proxy accepted")
	}
}

func TestAddrLimiterStaysBounded(t *testing.T) {
	l := newAddrLimiter(1, 1)
	now := time.Now()
	for i := range maxAddrBuckets + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(a, now)
	}
	if len(l.buckets) > maxAddrBuckets {
		t.Fatalf("%d buckets, cap %d", len(l.buckets), maxAddrBuckets)
	}
	// Once refilled, every bucket is forgotten at the next sweep.
	l.allow(netip.MustParseAddr("192.0.2.1"), now.Add(time.Minute))
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after a sweep, want 1", len(l.buckets))
	}
	// Addresses in one IPv6 /64 share a bucket.
	if !l.allow(netip.MustParseAddr("2001:db8::1"), now.Add(time.Minute)) || l.allow(netip.MustParseAddr("2001:db8::2"), now.Add(time.Minute)) {
		t.Error("two addresses of one /64 did not share a bucket")
	}
}

func TestTLSWithHTTP2SharesOneConnection(t *testing.T) {
	cert := testkit.NewSelfSigned(t)
	certFile, keyFile := cert.WriteFiles(t)
	pool := cert.Pool
	cfg := testConfig()
	cfg.Dev = true
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile}
	r := start(t, cfg)
	base := "https://" + r.srv.Addr()
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	t.Cleanup(h2.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Two SSE streams open at once: the second reuses the first's connection.
	var reused []bool
	for range 2 {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, base+"/sse?channel=tls", nil)
		res, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != http.StatusOK {
			t.Fatalf("SSE over TLS: %s %d, want HTTP/2 200", res.Proto, res.StatusCode)
		}
	}
	if len(reused) != 2 || !reused[1] {
		t.Errorf("connection reuse %v: the second stream should share the first's connection", reused)
	}

	// WebSocket clients speak HTTP/1.1 over TLS.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}}
	t.Cleanup(h1.CloseIdleConnections)
	c, _, err := cws.Dial(ctx, "wss://"+r.srv.Addr()+"/ws", &cws.DialOptions{HTTPClient: h1})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"client"`) {
		t.Fatalf("connect over wss: %s %v", b, err)
	}
}

func TestBadCertificateStopsStartup(t *testing.T) {
	cfg := testConfig()
	dir := t.TempDir()
	cfg.TLS = TLSConfig{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: filepath.Join(dir, "missing-key.pem")}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("New with a missing certificate: %v", err)
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	cfg.MaxHeaderBytes = 4 << 10
	r := start(t, cfg)
	// net/http allows 4 KiB of slack over MaxHeaderBytes before refusing.
	status, _, _ := r.request(t, http.MethodGet, "/poll?channel=a&timeout=0", http.Header{"X-Padding": {strings.Repeat("a", 12<<10)}}, "")
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("12 KiB of headers: status %d, want 431", status)
	}
	if status, _, _ := r.request(t, http.MethodGet, "/healthz", nil, ""); status != http.StatusOK {
		t.Errorf("healthz after: %d", status)
	}
}
