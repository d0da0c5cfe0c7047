package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend serves handler and closes with the test, after p's connections.
func backend(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func newProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func answer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func TestConnectRoundTrip(t *testing.T) {
	var got map[string]any
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("backend got %s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		answer(`{"result":{"user":"alice","expire_at":4102444800,"channels":["news:x"],"data":{"k":1}}}`)(w, r)
	})
	p := newProxy(t, Config{Connect: srv.URL})
	res, err := p.Proxies().Connect.ProxyConnect(context.Background(), node.ConnectProxyRequest{
		ProxyClient: node.ProxyClient{Client: "c1", Transport: "websocket", Protocol: "json"},
		Headers:     map[string]string{"X-App": "1"},
		Data:        json.RawMessage(`{"d":2}`),
	})
	if err != nil || res.User != "alice" || res.ExpireAt != 4102444800 || len(res.Channels) != 1 || string(res.Data) != `{"k":1}` {
		t.Fatalf("connect = %+v, %v", res, err)
	}
	if got["client"] != "c1" || got["transport"] != "websocket" || got["headers"].(map[string]any)["X-App"] != "1" {
		t.Errorf("backend got %v", got)
	}
}

func TestOnlyConfiguredHeadersAndCookies(t *testing.T) {
	p := newProxy(t, Config{Connect: "http://backend.invalid/connect", Headers: []string{"x-app-session", "Authorization"}, Cookies: []string{"sid"}})
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("X-App-Session", "s1")
	r.Header.Set("X-Other", "secret")
	r.Header.Add("Cookie", "sid=abc; tracking=zzz")
	m := p.RequestMeta(r, "websocket", "10.1.2.3")
	if len(m.Headers) != 1 || m.Headers["X-App-Session"] != "s1" {
		t.Errorf("headers %v, want only X-App-Session", m.Headers)
	}
	if len(m.Cookies) != 1 || m.Cookies["sid"] != "abc" {
		t.Errorf("cookies %v, want only sid", m.Cookies)
	}
	if m.Transport != "websocket" || m.RemoteAddr != "10.1.2.3" {
		t.Errorf("meta %+v", m)
	}
}

func TestRefusalsAndFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		check   func(error) bool
	}{
		{"error", answer(`{"error":{"code":1403,"message":"banned"}}`), func(err error) bool {
			var pe *node.ProxyError
			return errors.As(err, &pe) && pe.Code == 1403 && pe.Message == "banned"
		}},
		{"disconnect", answer(`{"disconnect":{"code":4601,"reason":"bye"}}`), func(err error) bool {
			var pd *node.ProxyDisconnect
			return errors.As(err, &pd) && pd.Code == 4601 && pd.Reason == "bye"
		}},
		{"status 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, isFailure},
		{"not json", answer(`<html>`), isFailure},
		{"empty reply", answer(`{}`), isFailure},
		{"too large", answer(`{"result":{"user":"` + strings.Repeat("a", 2048) + `"}}`), isFailure},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, isFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := backend(t, tc.handler)
			p := newProxy(t, Config{Connect: srv.URL, MaxResponseBytes: 1024})
			_, err := p.Proxies().Connect.ProxyConnect(context.Background(), node.ConnectProxyRequest{})
			if !tc.check(err) {
				t.Errorf("got %v (%T)", err, err)
			}
		})
	}
}

// isFailure: not a refusal, so clients see the backend as unavailable.
func isFailure(err error) bool {
	var pe *node.ProxyError
	var pd *node.ProxyDisconnect
	return err != nil && !errors.As(err, &pe) && !errors.As(err, &pd)
}

// calls records what an Observer is told.
type calls struct {
	mu  sync.Mutex
	got []string
}

func (c *calls) ProxyCall(kind, result string, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if took <= 0 {
		result += " (no duration)"
	}
	c.got = append(c.got, kind+" "+result)
}

func TestObserverSeesEveryCall(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/connect", answer(`{"result":{"user":"alice"}}`))
	mux.HandleFunc("/refresh", answer(`{"error":{"code":1403,"message":"banned"}}`))
	mux.HandleFunc("/subscribe", answer(`{"disconnect":{"code":4601,"reason":"bye"}}`))
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/rpc", answer(`{"result":{"data":1}}`))
	srv := backend(t, mux.ServeHTTP)
	obs := &calls{}
	p := newProxy(t, Config{
		Connect: srv.URL + "/connect", Refresh: srv.URL + "/refresh", Subscribe: srv.URL + "/subscribe",
		Publish: srv.URL + "/publish", RPC: srv.URL + "/rpc", Observer: obs,
	})
	ps, ctx := p.Proxies(), context.Background()
	_, _ = ps.Connect.ProxyConnect(ctx, node.ConnectProxyRequest{})
	_, _ = ps.Refresh.ProxyRefresh(ctx, node.RefreshProxyRequest{})
	_, _ = ps.Subscribe.ProxySubscribe(ctx, node.SubscribeProxyRequest{})
	_, _ = ps.Publish.ProxyPublish(ctx, node.PublishProxyRequest{})
	_, _ = ps.RPC.ProxyRPC(ctx, node.RPCProxyRequest{})
	want := []string{"connect ok", "refresh error", "subscribe error", "publish unavailable", "rpc ok"}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Equal(obs.got, want) {
		t.Errorf("observer told %q, want %q", obs.got, want)
	}
}

func TestTimeoutIsBounded(t *testing.T) {
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	p := newProxy(t, Config{RPC: srv.URL, Timeout: 200 * time.Millisecond})
	began := time.Now()
	_, err := p.Proxies().RPC.ProxyRPC(context.Background(), node.RPCProxyRequest{Method: "slow"})
	took := time.Since(began)
	if !isFailure(err) {
		t.Fatalf("slow backend: %v, want a failure", err)
	}
	if took > 2*time.Second {
		t.Errorf("call took %v with a 200ms timeout", took)
	}
}

func TestOnlyConfiguredKinds(t *testing.T) {
	p := newProxy(t, Config{RPC: "https://backend.example/rpc"})
	ps := p.Proxies()
	if ps.RPC == nil || ps.Connect != nil || ps.Refresh != nil || ps.Subscribe != nil || ps.Publish != nil {
		t.Errorf("proxies %+v, want only rpc", ps)
	}
}

func TestNewRefusesBadEndpoints(t *testing.T) {
	for _, cfg := range []Config{
		{Connect: "ftp://x/"},
		{RPC: "not a url"},
		{Publish: "http://"},
		{Refresh: "http://b/refresh"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

// BenchmarkConnect is the cost of one connect proxy call to a loopback
// backend: what a tokenless client's connect adds.
func BenchmarkConnect(b *testing.B) {
	srv := httptest.NewServer(answer(`{"result":{"user":"alice"}}`))
	defer srv.Close()
	p, err := New(Config{Connect: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := node.ConnectProxyRequest{ProxyClient: node.ProxyClient{Client: "c", Transport: "websocket", Protocol: "json"}, Cookies: map[string]string{"sid": "s"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Proxies().Connect.ProxyConnect(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
