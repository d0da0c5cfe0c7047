package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/testkit"
)

// proxyBackend is an application backend: it knows the session "s-alice",
// allows subscribing to rooms:open-*, refuses publications saying "spam",
// rewrites the others, and answers the rpc "whoami". It records what it was
// sent per endpoint.
type proxyBackend struct {
	*httptest.Server
	mu   sync.Mutex
	got  map[string][]map[string]any
	hang chan struct{} // closed when the test ends; /slow waits on it
}

func newProxyBackend(t *testing.T) *proxyBackend {
	t.Helper()
	b := &proxyBackend{got: map[string][]map[string]any{}, hang: make(chan struct{})}
	reply := func(w http.ResponseWriter, v string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(v))
	}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		b.mu.Lock()
		b.got[r.URL.Path] = append(b.got[r.URL.Path], req)
		b.mu.Unlock()
		switch r.URL.Path {
		case "/connect":
			cookies, _ := req["cookies"].(map[string]any)
			switch cookies["sid"] {
			case "s-alice":
				reply(w, `{"result":{"user":"alice","data":{"welcome":true}}}`)
			case "s-banned":
				reply(w, `{"disconnect":{"code":4601,"reason":"banned"}}`)
			default:
				reply(w, `{"error":{"code":1401,"message":"log in first"}}`)
			}
		case "/subscribe":
			if strings.HasPrefix(req["channel"].(string), "rooms:open-") {
				reply(w, `{"result":{}}`)
				return
			}
			reply(w, `{"error":{"code":103,"message":"not a member"}}`)
		case "/publish":
			if strings.Contains(string(must(json.Marshal(req["data"]))), "spam") {
				reply(w, `{"error":{"code":1422,"message":"spam"}}`)
				return
			}
			reply(w, `{"result":{"data":{"text":"moderated"}}}`)
		case "/rpc":
			reply(w, `{"result":{"data":{"user":"`+req["user"].(string)+`","method":"`+req["method"].(string)+`"}}}`)
		case "/slow":
			select {
			case <-b.hang:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() {
		close(b.hang)
		b.Close()
	})
	return b
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func (b *proxyBackend) requests(path string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]any(nil), b.got[path]...)
}

func proxyConfig(b *proxyBackend) Config {
	cfg := testConfig()
	cfg.Proxy.ConnectURL = b.URL + "/connect"
	cfg.Proxy.SubscribeURL = b.URL + "/subscribe"
	cfg.Proxy.PublishURL = b.URL + "/publish"
	cfg.Proxy.RPCURL = b.URL + "/rpc"
	cfg.Proxy.Headers = []string{"X-App"}
	cfg.Proxy.Cookies = []string{"sid"}
	cfg.Namespaces = []node.NamespaceOptions{
		{Name: "rooms", HistorySize: 10, HistoryTTL: time.Hour, ProxySubscribe: true, ProxyPublish: true},
		{Name: "public", HistorySize: 10, HistoryTTL: time.Hour, Subscribe: node.AccessAuthenticated},
	}
	return cfg
}

// dialWS opens a WebSocket with the given cookie and sends connect.
func dialWS(t *testing.T, ctx context.Context, r *running, cookie string) *cws.Conn {
	t.Helper()
	h := http.Header{"Cookie": {cookie}, "X-App": {"app-1"}, "X-Secret": {"not forwarded"}}
	ws := r.openWS(t, ctx, h)
	wsSend(t, ctx, ws, `{"id":1,"method":"connect","params":{"data":{"hello":1}}}`)
	return ws
}

func wsSend(t *testing.T, ctx context.Context, ws *cws.Conn, s string) {
	t.Helper()
	if err := ws.Write(ctx, cws.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func wsReply(t *testing.T, ctx context.Context, ws *cws.Conn, id float64) map[string]any {
	t.Helper()
	return wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == id })
}

// wsClosed reads until the connection closes and returns its close code.
func wsClosed(ctx context.Context, ws *cws.Conn) cws.StatusCode {
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return cws.CloseStatus(err)
		}
	}
}

func TestProxyConnectOverWebSocket(t *testing.T) {
	b := newProxyBackend(t)
	r := start(t, proxyConfig(b))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ws := dialWS(t, ctx, r, "sid=s-alice; tracking=t1")
	res := wsReply(t, ctx, ws, 1)["result"].(map[string]any)
	if res["user"] != "alice" || res["data"].(map[string]any)["welcome"] != true {
		t.Fatalf("connect result %v", res)
	}
	reqs := b.requests("/connect")
	if len(reqs) != 1 {
		t.Fatalf("backend got %d connect requests", len(reqs))
	}
	req := reqs[0]
	headers, _ := req["headers"].(map[string]any)
	cookies, _ := req["cookies"].(map[string]any)
	if len(headers) != 1 || headers["X-App"] != "app-1" {
		t.Errorf("forwarded headers %v, want only X-App", headers)
	}
	if len(cookies) != 1 || cookies["sid"] != "s-alice" {
		t.Errorf("forwarded cookies %v, want only sid", cookies)
	}
	if req["transport"] != "websocket" || req["client"] != res["client"] || req["remote_addr"] != "127.0.0.1" || req["data"].(map[string]any)["hello"] != 1.0 {
		t.Errorf("connect request %v", req)
	}

	// The backend decides subscriptions in rooms, the namespace's rule elsewhere.
	wsSend(t, ctx, ws, `{"id":2,"method":"subscribe","params":{"channel":"rooms:open-1"}}`)
	if rep := wsReply(t, ctx, ws, 2); rep["error"] != nil {
		t.Errorf("allowed subscribe: %v", rep)
	}
	wsSend(t, ctx, ws, `{"id":3,"method":"subscribe","params":{"channel":"rooms:secret"}}`)
	if rep := wsReply(t, ctx, ws, 3); rep["error"] == nil || rep["error"].(map[string]any)["code"] != 103.0 {
		t.Errorf("refused subscribe: %v, want 103", rep)
	}
	wsSend(t, ctx, ws, `{"id":4,"method":"subscribe","params":{"channel":"public:news"}}`)
	if rep := wsReply(t, ctx, ws, 4); rep["error"] != nil {
		t.Errorf("subscribe in a namespace without proxy: %v", rep)
	}
	if n := len(b.requests("/subscribe")); n != 2 {
		t.Errorf("backend asked about %d subscriptions, want 2", n)
	}

	// Publications: refused with the backend's own code, or rewritten.
	wsSend(t, ctx, ws, `{"id":5,"method":"publish","params":{"channel":"rooms:open-1","data":{"text":"spam"}}}`)
	if rep := wsReply(t, ctx, ws, 5); rep["error"] == nil || rep["error"].(map[string]any)["code"] != 1422.0 {
		t.Errorf("refused publish: %v, want 1422", rep)
	}
	wsSend(t, ctx, ws, `{"id":6,"method":"publish","params":{"channel":"rooms:open-1","data":{"text":"hi"}}}`)
	pub := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["type"] == "publication" })
	if pub["data"].(map[string]any)["text"] != "moderated" {
		t.Errorf("publication %v, want the backend's data", pub)
	}
	if p := b.requests("/publish"); len(p) != 2 || p[1]["user"] != "alice" || p[1]["channel"] != "rooms:open-1" {
		t.Errorf("publish requests %v", p)
	}

	// RPC.
	wsSend(t, ctx, ws, `{"id":7,"method":"rpc","params":{"method":"whoami","data":[1]}}`)
	rep := wsReply(t, ctx, ws, 7)
	if data, _ := rep["result"].(map[string]any)["data"].(map[string]any); data["user"] != "alice" || data["method"] != "whoami" {
		t.Errorf("rpc reply %v", rep)
	}
}

func TestProxyConnectRefusals(t *testing.T) {
	b := newProxyBackend(t)
	r := start(t, proxyConfig(b))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ws := dialWS(t, ctx, r, "sid=unknown")
	if e, _ := wsReply(t, ctx, ws, 1)["error"].(map[string]any); e["code"] != 1401.0 {
		t.Errorf("connect error %v, want the backend's 1401", e)
	}
	if code := wsClosed(ctx, ws); code != 4501 {
		t.Errorf("closed with %d, want 4501", code)
	}
	ws = dialWS(t, ctx, r, "sid=s-banned")
	if code := wsClosed(ctx, ws); code != 4601 {
		t.Errorf("closed with %d, want the backend's 4601", code)
	}
	// One-way transports get the refusal as an HTTP error.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel=public:news", nil)
	req.Header.Set("Cookie", "sid=unknown")
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("refused SSE stream: status %d, want 400 for an application code", res.StatusCode)
	}
	// A client with a token is not asked about; this server takes none.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/poll?channel=public:news", nil)
	req.Header.Set("Authorization", "Bearer x.y.z")
	res, err = r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || len(b.requests("/connect")) != 3 {
		t.Errorf("poll with a token: status %d after %d connect requests, want 401 without asking", res.StatusCode, len(b.requests("/connect")))
	}
}

func TestProxyBackendTimeout(t *testing.T) {
	b := newProxyBackend(t)
	cfg := proxyConfig(b)
	cfg.Proxy.ConnectURL = b.URL + "/slow"
	cfg.Proxy.Timeout = 300 * time.Millisecond
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	began := time.Now()
	ws := dialWS(t, ctx, r, "sid=s-alice")
	if e, _ := wsReply(t, ctx, ws, 1)["error"].(map[string]any); e["code"] != 118.0 {
		t.Errorf("connect error %v, want 118", e)
	}
	if code := wsClosed(ctx, ws); code != 4006 {
		t.Errorf("closed with %d, want 4006", code)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("refusal took %v with a 300ms timeout", took)
	}
	status, body, _ := r.do(t, http.MethodPost, "/rpc", "", `{"method":"whoami"}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":118`) {
		t.Errorf("rpc with a hung connect backend: %d %s, want 503 with 118", status, body)
	}
}

// TestSlowBackendLeavesOtherCommandsServed: more subscribes wait for a hung
// backend than the WebSocket transport has command workers of its own, yet
// another connection's command is answered at once: the pool has room for
// every backend request the node lets commands wait for.
func TestSlowBackendLeavesOtherCommandsServed(t *testing.T) {
	b := newProxyBackend(t)
	cfg := proxyConfig(b)
	cfg.Proxy.SubscribeURL = b.URL + "/slow"
	// The backend timeout must stay under the pong timeout; both are long
	// here so that commands stuck behind the hung requests would show.
	cfg.PingInterval, cfg.PongTimeout, cfg.PresenceTTL = time.Minute, 30*time.Second, 2*time.Minute
	cfg.Proxy.Timeout = 29 * time.Second
	cfg.CommandRate, cfg.CommandBurst = 1000, 1000
	// Hundreds of connections of one user from one address.
	cfg.ConnectionRate, cfg.MaxConnectionsPerUser = 0, 0
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	began := time.Now()
	waiting := 128*runtime.GOMAXPROCS(0) + 16
	for i := range waiting {
		ws := dialWS(t, ctx, r, "sid=s-alice")
		if rep := wsReply(t, ctx, ws, 1); rep["error"] != nil {
			t.Fatalf("connect %d: %v", i, rep)
		}
		wsSend(t, ctx, ws, fmt.Sprintf(`{"id":2,"method":"subscribe","params":{"channel":"rooms:open-%d"}}`, i))
	}
	testkit.WaitFor(t, 20*time.Second, "every subscribe waiting at the backend", func() bool {
		return len(b.requests("/slow")) == waiting
	})
	probe := dialWS(t, ctx, r, "sid=s-alice")
	if rep := wsReply(t, ctx, probe, 1); rep["error"] != nil {
		t.Fatalf("probe connect: %v", rep)
	}
	wsSend(t, ctx, probe, `{"id":2,"method":"subscribe","params":{"channel":"public:news"}}`)
	if rep := wsReply(t, ctx, probe, 2); rep["error"] != nil {
		t.Fatalf("probe subscribe: %v", rep)
	}
	// Without room in the pool the last connects, their subscribes and the
	// probe would wait for the first requests to time out (29 s).
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("%d hung backend requests held other connections' commands: %v", waiting, took)
	}
}

// TestProxyRefresh: a session the backend opened with an expire_at is
// extended by the refresh endpoint, then closed when it says expired.
func TestProxyRefresh(t *testing.T) {
	var mu sync.Mutex
	refreshes := 0
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/connect":
			fmt.Fprintf(w, `{"result":{"user":"alice","expire_at":%d}}`, time.Now().Unix()+2)
		case "/refresh":
			var req map[string]any
			_ = json.NewDecoder(r.Body).Decode(&req)
			mu.Lock()
			refreshes++
			n := refreshes
			mu.Unlock()
			if req["user"] != "alice" || n > 1 {
				fmt.Fprint(w, `{"result":{"expired":true}}`)
				return
			}
			fmt.Fprintf(w, `{"result":{"expire_at":%d}}`, time.Now().Unix()+2)
		}
	}))
	defer backend.Close()
	cfg := testConfig()
	cfg.Dev = true
	cfg.Proxy.ConnectURL = backend.URL + "/connect"
	cfg.Proxy.RefreshURL = backend.URL + "/refresh"
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ws := dialWS(t, ctx, r, "")
	if res, _ := wsReply(t, ctx, ws, 1)["result"].(map[string]any); res["user"] != "alice" || res["expires_in"] == nil {
		t.Fatalf("connect result %v, want alice with expires_in", res)
	}
	began := time.Now()
	if code := wsClosed(ctx, ws); code != 4505 {
		t.Errorf("closed with %d, want 4505 once the backend says expired", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if refreshes != 2 {
		t.Errorf("refresh asked %d times, want 2 (extended once, then expired)", refreshes)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("closed after %v: the extension did not hold", took)
	}
}

func TestProxyHTTPCommands(t *testing.T) {
	b := newProxyBackend(t)
	r := start(t, proxyConfig(b))
	post := func(path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(body))
		req.Header.Set("Cookie", "sid=s-alice")
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(out))
	}
	if status, body := post("/rpc", `{"method":"whoami"}`); status != http.StatusOK || body != `{"data":{"user":"alice","method":"whoami"}}` {
		t.Errorf("POST /rpc: %d %s", status, body)
	}
	if rpc := b.requests("/rpc"); len(rpc) != 1 || rpc[0]["transport"] != "http" || rpc[0]["client"] != nil {
		t.Errorf("rpc request %v", rpc)
	}
	if status, body := post("/publish", `{"channel":"rooms:x","data":"spam"}`); status != http.StatusBadRequest || !strings.Contains(body, `"code":1422`) {
		t.Errorf("refused POST /publish: %d %s", status, body)
	}
	if status, body := post("/publish", `{"channel":"rooms:x","data":"fine"}`); status != http.StatusOK {
		t.Errorf("POST /publish: %d %s", status, body)
	}
	status, body, _ := r.do(t, http.MethodPost, "/api/history", testKey, `{"channel":"rooms:x"}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"data":{"text":"moderated"}`) {
		t.Errorf("history %d %s, want the backend's rewritten data", status, body)
	}
	// A poll asks the backend who the client is and whether it may read.
	req, _ := http.NewRequest(http.MethodGet, r.url+"/poll?channel=rooms:open-2", nil)
	req.Header.Set("Cookie", "sid=s-alice")
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("poll: %d", res.StatusCode)
	}
	// So does an SSE stream, for each of its channels.
	for channel, want := range map[string]int{"rooms:open-3": http.StatusOK, "rooms:secret": http.StatusForbidden} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel="+channel, nil)
		req.Header.Set("Cookie", "sid=s-alice")
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != want {
			t.Errorf("SSE stream of %s: %d, want %d", channel, res.StatusCode, want)
		}
		cancel()
		res.Body.Close()
	}
	subs := b.requests("/subscribe")
	if len(subs) != 3 || subs[2]["transport"] != "sse" || subs[2]["user"] != "alice" {
		t.Errorf("subscribe requests %v, want the poll's and the two streams'", subs)
	}
}

func TestProxyRPCWithoutEndpoint(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	r := start(t, cfg)
	status, body, _ := r.do(t, http.MethodPost, "/rpc", "", `{"method":"whoami"}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":108`) {
		t.Errorf("rpc without endpoint: %d %s, want 503 with 108", status, body)
	}
}

func TestProxyListsFromEnvironment(t *testing.T) {
	t.Setenv("HERALD_PROXY__HEADERS", "X-App, User-Agent")
	t.Setenv("HERALD_PROXY__COOKIES", "sid")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxy.Headers) != 2 || cfg.Proxy.Headers[1] != "User-Agent" || len(cfg.Proxy.Cookies) != 1 {
		t.Errorf("headers %q, cookies %q", cfg.Proxy.Headers, cfg.Proxy.Cookies)
	}
}

func TestProxyConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"bad url", func(c *Config) { c.Proxy.RPCURL = "ftp://x" }, "proxy.rpc_url"},
		{"refresh alone", func(c *Config) { c.Proxy.RefreshURL = "http://b/r" }, "proxy.refresh_url"},
		{"timeout", func(c *Config) { c.Proxy.Timeout = 0 }, "proxy.timeout"},
		{"timeout over pong", func(c *Config) { c.Proxy.RPCURL, c.Proxy.Timeout = "http://b/rpc", c.PongTimeout }, "proxy.timeout"},
		{"namespace needs subscribe", func(c *Config) {
			c.Namespaces = []node.NamespaceOptions{{Name: "x", ProxySubscribe: true}}
		}, "proxy.subscribe_url"},
		{"namespace needs publish", func(c *Config) {
			c.Namespaces = []node.NamespaceOptions{{Name: "x", ProxyPublish: true}}
		}, "proxy.publish_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.tweak(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error about %s", err, tc.want)
			}
		})
	}
}
