package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// fakeBackend answers every proxy kind with what its fields say and
// records the requests it got.
type fakeBackend struct {
	mu         sync.Mutex
	connect    func(ConnectProxyRequest) (ConnectProxyResult, error)
	refresh    func(RefreshProxyRequest) (RefreshProxyResult, error)
	subscribe  func(SubscribeProxyRequest) error
	publish    func(PublishProxyRequest) (PublishProxyResult, error)
	rpc        func(RPCProxyRequest) (RPCProxyResult, error)
	refreshes  int
	lastPubReq PublishProxyRequest
}

func (b *fakeBackend) ProxyConnect(_ context.Context, req ConnectProxyRequest) (ConnectProxyResult, error) {
	return b.connect(req)
}

func (b *fakeBackend) ProxyRefresh(_ context.Context, req RefreshProxyRequest) (RefreshProxyResult, error) {
	b.mu.Lock()
	b.refreshes++
	b.mu.Unlock()
	return b.refresh(req)
}

func (b *fakeBackend) ProxySubscribe(_ context.Context, req SubscribeProxyRequest) (SubscribeProxyResult, error) {
	return SubscribeProxyResult{}, b.subscribe(req)
}

func (b *fakeBackend) ProxyPublish(_ context.Context, req PublishProxyRequest) (PublishProxyResult, error) {
	b.mu.Lock()
	b.lastPubReq = req
	b.mu.Unlock()
	return b.publish(req)
}

func (b *fakeBackend) ProxyRPC(_ context.Context, req RPCProxyRequest) (RPCProxyResult, error) {
	return b.rpc(req)
}

// connectVia opens a bidirectional session and sends connect without a
// token, with meta as its HTTP request.
func connectVia(t *testing.T, n *Node, meta *RequestMeta, data string) (*pipe, map[string]json.RawMessage) {
	t.Helper()
	p := openSession(t, n, SessionOptions{Bidirectional: true, Credentials: Credentials{meta: meta}})
	params := map[string]any{}
	if data != "" {
		params["data"] = json.RawMessage(data)
	}
	p.s.HandleFrame(context.Background(), command(1, protocol.MethodConnect, params))
	var r map[string]json.RawMessage
	testkit.WaitFor(t, 5*time.Second, "connect reply", func() bool {
		var ok bool
		r, ok = replyTo(p.items(), 1)
		return ok
	})
	return p, r
}

func TestConnectProxyAuthenticatesWithoutToken(t *testing.T) {
	var got ConnectProxyRequest
	b := &fakeBackend{connect: func(req ConnectProxyRequest) (ConnectProxyResult, error) {
		got = req
		return ConnectProxyResult{User: "alice", Info: json.RawMessage(`{"n":1}`), Data: json.RawMessage(`{"hello":"alice"}`)}, nil
	}}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b}})
	meta := &RequestMeta{Transport: "websocket", RemoteAddr: "10.0.0.1", Headers: map[string]string{"X-A": "1"}, Cookies: map[string]string{"sid": "s"}}
	p, r := connectVia(t, n, meta, `{"v":2}`)
	var res protocol.ConnectResult
	if err := json.Unmarshal(r["result"], &res); err != nil || res.User != "alice" || string(res.Data) != `{"hello":"alice"}` {
		t.Fatalf("connect reply %s, want user alice with the backend's data", r["result"])
	}
	if got.Client != p.s.ID() || got.Transport != "test" || got.RemoteAddr != "10.0.0.1" || got.Headers["X-A"] != "1" || got.Cookies["sid"] != "s" || string(got.Data) != `{"v":2}` {
		t.Errorf("backend got %+v", got)
	}
	if c := p.s.credentials(); c.meta != nil || !c.viaProxy {
		t.Errorf("credentials after connect %+v: the request's meta should be dropped", c)
	}
}

func TestConnectProxyRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantCode  uint32
		wantClose protocol.Disconnect
	}{
		{"app error passes", &ProxyError{Code: 1403, Message: "banned"}, 1403, protocol.DisconnectUnauthorized},
		{"other error maps", &ProxyError{Code: 42, Message: "no"}, protocol.ErrUnauthorized.Code, protocol.DisconnectUnauthorized},
		{"app disconnect", &ProxyDisconnect{Code: 4601, Reason: "go away"}, protocol.ErrUnauthorized.Code, protocol.Disconnect{Code: 4601, Reason: "go away"}},
		{"app reconnect", &ProxyDisconnect{Code: 4101, Reason: "later"}, protocol.ErrUnauthorized.Code, protocol.Disconnect{Code: 4101, Reason: "later", Reconnect: true}},
		{"herald disconnect code", &ProxyDisconnect{Code: 4000, Reason: "x"}, protocol.ErrUnauthorized.Code, protocol.Disconnect{Code: 4504, Reason: "x"}},
		{"unreachable", errors.New("dial tcp: refused"), protocol.ErrBackendUnavailable.Code, protocol.DisconnectBackendUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBackend{connect: func(ConnectProxyRequest) (ConnectProxyResult, error) { return ConnectProxyResult{}, tc.err }}
			n := newTestNode(t, Config{Proxy: Proxies{Connect: b}})
			p, r := connectVia(t, n, nil, "")
			var e protocol.Error
			if err := json.Unmarshal(r["error"], &e); err != nil || e.Code != tc.wantCode {
				t.Fatalf("connect reply %v, want error %d", r, tc.wantCode)
			}
			testkit.WaitFor(t, 5*time.Second, "disconnect", func() bool { return p.disconnect() != nil })
			d := *p.disconnect()
			if d.Code != tc.wantClose.Code || d.Reconnect != tc.wantClose.Reconnect || (tc.wantClose.Code >= 4100 && d.Reason != tc.wantClose.Reason) {
				t.Errorf("closed with %+v, want %+v", d, tc.wantClose)
			}
		})
	}
}

func TestRequestCredentialsAskConnectProxy(t *testing.T) {
	b := &fakeBackend{connect: func(req ConnectProxyRequest) (ConnectProxyResult, error) {
		if req.Transport != "sse" || req.Client != "" {
			return ConnectProxyResult{}, &ProxyError{Code: 1000, Message: "unexpected " + req.Transport}
		}
		return ConnectProxyResult{User: "bob", Channels: []string{"news:x"}}, nil
	}}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b}})
	ctx := WithRequestMeta(context.Background(), RequestMeta{Transport: "sse"})
	cred, err := n.RequestCredentials(ctx)
	if err != nil || cred.UserID != "bob" || len(cred.Channels) != 1 {
		t.Fatalf("RequestCredentials = %+v, %v", cred, err)
	}
	// Credentials the gate verified from a token are not asked about again.
	cred, err = n.RequestCredentials(WithCredentials(ctx, Credentials{UserID: "carol"}))
	if err != nil || cred.UserID != "carol" {
		t.Fatalf("RequestCredentials with a token's credentials = %+v, %v", cred, err)
	}
}

func TestRefreshProxyExtendsThenDisconnects(t *testing.T) {
	var mu sync.Mutex
	extend := true
	b := &fakeBackend{
		connect: func(ConnectProxyRequest) (ConnectProxyResult, error) {
			return ConnectProxyResult{User: "alice", ExpireAt: time.Now().Add(time.Second).Unix() + 1}, nil
		},
		refresh: func(req RefreshProxyRequest) (RefreshProxyResult, error) {
			mu.Lock()
			defer mu.Unlock()
			if req.User != "alice" {
				return RefreshProxyResult{}, &ProxyError{Code: 1, Message: "who?"}
			}
			if extend {
				extend = false
				return RefreshProxyResult{ExpireAt: time.Now().Add(time.Second).Unix() + 1}, nil
			}
			return RefreshProxyResult{Expired: true}, nil
		},
	}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b, Refresh: b}})
	p, r := connectVia(t, n, nil, "")
	if r["error"] != nil {
		t.Fatalf("connect: %s", r["error"])
	}
	testkit.WaitFor(t, 10*time.Second, "the session to end", func() bool { return p.disconnect() != nil })
	if d := p.disconnect(); d.Code != protocol.DisconnectTokenExpired.Code {
		t.Errorf("closed with %+v, want token expired", d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refreshes != 2 {
		t.Errorf("backend asked %d times, want 2: once extended, once expired", b.refreshes)
	}
	for _, it := range p.items() {
		if it.Push == protocol.PushRefresh {
			t.Error("a proxied session was asked for a token")
		}
	}
}

func TestRefreshProxyUnavailableKeepsSession(t *testing.T) {
	b := &fakeBackend{
		connect: func(ConnectProxyRequest) (ConnectProxyResult, error) {
			return ConnectProxyResult{User: "alice", ExpireAt: time.Now().Unix() + 1}, nil
		},
		refresh: func(RefreshProxyRequest) (RefreshProxyResult, error) {
			return RefreshProxyResult{}, errors.New("timeout")
		},
	}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b, Refresh: b}})
	p, _ := connectVia(t, n, nil, "")
	testkit.WaitFor(t, 5*time.Second, "a refresh attempt", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.refreshes > 0
	})
	if d := p.disconnect(); d != nil {
		t.Fatalf("an unreachable backend closed the session: %+v", d)
	}
}

func proxiedNamespaces() []NamespaceOptions {
	return []NamespaceOptions{
		{Name: "open", Subscribe: AccessAnyone, Publish: AccessAnyone},
		{Name: "guarded", ProxySubscribe: true, ProxyPublish: true},
	}
}

func TestSubscribeProxyDecidesPerNamespace(t *testing.T) {
	var asked []string
	var mu sync.Mutex
	b := &fakeBackend{subscribe: func(req SubscribeProxyRequest) error {
		mu.Lock()
		asked = append(asked, req.Channel)
		mu.Unlock()
		if req.Channel == "guarded:yes" {
			return nil
		}
		return &ProxyError{Code: 1001, Message: "not yours"}
	}}
	n := newTestNode(t, Config{Namespaces: proxiedNamespaces(), Proxy: Proxies{Subscribe: b, Publish: b}})
	p := openSession(t, n, SessionOptions{Authenticated: true})
	ctx := context.Background()
	if err := p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:yes"}); err != nil {
		t.Errorf("allowed subscribe: %v", err)
	}
	err := p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:no"})
	if e := protocol.AsError(err); e == nil || e.Code != 1001 {
		t.Errorf("refused subscribe: %v, want the backend's 1001", err)
	}
	if err := p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "open:x"}); err != nil {
		t.Errorf("subscribe in a namespace without proxy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 {
		t.Errorf("backend asked about %v, want only the guarded channels", asked)
	}
}

func TestPublishProxyDeniesAndRewrites(t *testing.T) {
	b := &fakeBackend{publish: func(req PublishProxyRequest) (PublishProxyResult, error) {
		if string(req.Data) == `{"bad":true}` {
			return PublishProxyResult{}, &ProxyError{Code: 103, Message: "moderated"}
		}
		return PublishProxyResult{Data: json.RawMessage(`{"clean":true}`)}, nil
	}}
	n := newTestNode(t, Config{Namespaces: proxiedNamespaces(), Proxy: Proxies{Publish: b, Subscribe: b}})
	ctx := context.Background()
	cred := Credentials{UserID: "u"}
	_, err := n.ClientPublish(ctx, cred, nil, protocol.PublishRequest{Channel: "guarded:c", Data: json.RawMessage(`{"bad":true}`)})
	if !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Errorf("denied publish: %v, want 103", err)
	}
	if _, err := n.ClientPublish(ctx, cred, nil, protocol.PublishRequest{Channel: "guarded:c", Data: json.RawMessage(`{"x": 1}`)}); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	b.mu.Lock()
	if req := b.lastPubReq; req.User != "u" || req.Transport != "http" || string(req.Data) != `{"x":1}` {
		t.Errorf("backend got %+v", req)
	}
	b.mu.Unlock()
	h, err := n.History(ctx, protocol.HistoryRequest{Channel: "guarded:c"})
	if err == nil {
		t.Fatalf("guarded namespace keeps no history, got %+v", h)
	}
}

func TestPublishProxyRewriteReachesSubscribers(t *testing.T) {
	b := &fakeBackend{
		subscribe: func(SubscribeProxyRequest) error { return nil },
		publish: func(PublishProxyRequest) (PublishProxyResult, error) {
			return PublishProxyResult{Data: json.RawMessage(`{"clean":true}`)}, nil
		},
	}
	n := newTestNode(t, Config{Namespaces: proxiedNamespaces(), Proxy: Proxies{Publish: b, Subscribe: b}})
	p := openSession(t, n, SessionOptions{Authenticated: true})
	if err := p.s.subscribe(context.Background(), subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ClientPublish(context.Background(), Credentials{}, nil, protocol.PublishRequest{Channel: "guarded:c", Data: json.RawMessage(`{"dirty":true}`)}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the rewritten publication", func() bool {
		for _, it := range p.items() {
			if it.Kind == ItemPublication && strings.Contains(string(it.Frame), `"data":{"clean":true}`) {
				return true
			}
		}
		return false
	})
}

func TestNewRefusesProxiedNamespaceWithoutProxy(t *testing.T) {
	eng := memory.New(memory.Config{})
	defer func() { _ = eng.Close(context.Background()) }()
	if _, err := New(Config{Engine: eng, Namespaces: []NamespaceOptions{{Name: "g", ProxySubscribe: true}}}); err == nil {
		t.Error("New accepted proxy_subscribe without a subscribe proxy")
	}
	if _, err := New(Config{Engine: eng, Namespaces: []NamespaceOptions{{Name: "g", ProxyPublish: true}}}); err == nil {
		t.Error("New accepted proxy_publish without a publish proxy")
	}
}

// With MaxProxyRequests backend requests in flight, one more fails at once
// with 118 rather than wait (and hold a transport's command worker); a slot
// freed serves the next request.
func TestProxyRequestsInFlightAreBounded(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	b := &fakeBackend{subscribe: func(SubscribeProxyRequest) error {
		entered <- struct{}{}
		<-release
		return nil
	}}
	n := newTestNode(t, Config{Namespaces: proxiedNamespaces(), Proxy: Proxies{Subscribe: b, Publish: b}, MaxProxyRequests: 2})
	if got := n.BlockingProxyCalls(); got != 2 {
		t.Fatalf("BlockingProxyCalls %d, want 2", got)
	}
	ctx := context.Background()
	held := make(chan error, 2)
	for i := range 2 {
		p := openSession(t, n, SessionOptions{Authenticated: true})
		go func() {
			held <- p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:" + string(rune('a'+i))})
		}()
		<-entered
	}
	p := openSession(t, n, SessionOptions{Authenticated: true})
	began := time.Now()
	err := p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:c"})
	if !errors.Is(err, protocol.ErrBackendUnavailable) {
		t.Errorf("third request in flight: %v, want 118", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("the refusal took %v; it must not wait for a slot", took)
	}
	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Errorf("held subscribe: %v", err)
		}
	}
	if err := p.s.subscribe(ctx, subscribeOrigin{}, protocol.SubscribeRequest{Channel: "guarded:c"}); err != nil {
		t.Errorf("subscribe once slots are free: %v", err)
	}
	if got := newTestNode(t, Config{}).BlockingProxyCalls(); got != 0 {
		t.Errorf("BlockingProxyCalls without proxies: %d, want 0", got)
	}
}
