package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/hooks/webhook"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/testkit"
)

// hookReceiver is a webhook endpoint that keeps the events of every request
// whose signature checks out.
type hookReceiver struct {
	secret string
	mu     sync.Mutex
	events []webhook.Record
	bad    int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var b webhook.Batch
	h.mu.Lock()
	defer h.mu.Unlock()
	if webhook.Verify([]byte(h.secret), r.Header.Get(webhook.SignatureHeader), body, time.Minute, time.Now()) != nil || json.Unmarshal(body, &b) != nil {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.events = append(h.events, b.Events...)
}

func (h *hookReceiver) got() ([]webhook.Record, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events), h.bad
}

// A WebSocket client's life reaches a webhook endpoint through the real
// server, in order, signed, and filtered by type; the disconnect of the
// server's own shutdown is delivered before Run returns.
func TestWebhooksEndToEnd(t *testing.T) {
	recv := &hookReceiver{secret: "a-webhook-secret-of-some-length"}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	cfg := testConfig()
	cfg.Dev = true
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()
	cfg.Webhooks.FlushInterval = 5 * time.Millisecond
	cfg.Webhooks.Endpoints = []WebhookEndpoint{{
		URL: hook.URL, Secret: recv.secret,
		Events: []string{"connect", "subscribe", "publish", "occupied", "unsubscribe", "vacated", "disconnect"},
	}}
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ws := r.openWS(t, ctx, nil)
	send := func(s string) {
		if err := ws.Write(ctx, cws.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"id":1,"method":"connect","params":{}}`)
	connected := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 1.0 })
	client := connected["result"].(map[string]any)["client"].(string)
	send(`{"id":2,"method":"subscribe","params":{"channel":"chat:hooks"}}`)
	wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 2.0 })
	send(`{"id":3,"method":"publish","params":{"channel":"chat:hooks","data":{"text":"hi"}}}`)
	wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 3.0 })
	send(`{"id":4,"method":"unsubscribe","params":{"channel":"chat:hooks"}}`)
	wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 4.0 })

	testkit.WaitFor(t, 10*time.Second, "the events before the disconnect", func() bool { evs, _ := recv.got(); return len(evs) >= 6 })
	status, body, _ := r.do(t, http.MethodGet, "/metrics", "", "")
	wantStatus(t, "metrics", status, http.StatusOK, body)
	if !strings.Contains(string(body), "herald_webhook_delivered_total") || !strings.Contains(string(body), "herald_webhook_outbox_depth") {
		t.Errorf("/metrics lacks the webhook metrics")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	evs, bad := recv.got()
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []string{"connect", "occupied", "subscribe", "publish", "unsubscribe", "vacated", "disconnect"}
	if !slices.Equal(types, want) || bad != 0 {
		t.Fatalf("webhook got %v (%d badly signed), want %v", types, bad, want)
	}
	for _, e := range evs {
		if e.ID == "" || e.Node == "" {
			t.Errorf("%s without id or node: %+v", e.Type, e)
		}
		// A publish names its publisher, not the transport it came over.
		if e.Type != "occupied" && e.Type != "vacated" && (e.Client != client || e.Transport != "websocket" && e.Type != "publish") {
			t.Errorf("%s names client %q over %q, want %q over websocket", e.Type, e.Client, e.Transport, client)
		}
	}
	if pub := evs[3]; pub.Channel != "chat:hooks" || pub.Offset != 1 || string(pub.Data) != `{"text":"hi"}` {
		t.Errorf("publish event %+v", pub)
	}
	if d := evs[6]; d.Code != 4000 {
		t.Errorf("disconnect at shutdown has code %d, want 4000", d.Code)
	}
}

// Endpoints written by genconfig load back in every format, TOML's inline
// tables included.
func TestWebhooksConfigRoundTrip(t *testing.T) {
	cfg := Defaults()
	cfg.Webhooks.Endpoints = []WebhookEndpoint{
		{URL: "https://a.example/h", Secret: "0123456789abcdefgh", Events: []string{"publish", "join"}, Channels: []string{"chat:*"}},
		{URL: "http://b.example:8080/", Secret: `odd "secret" \ of length`, Events: []string{}, Channels: []string{}},
	}
	cfg.Webhooks.RetryMax = 5 * time.Minute
	for _, format := range []string{FormatYAML, FormatTOML, FormatJSON} {
		if got := roundTrip(t, cfg, format); !reflect.DeepEqual(got.Webhooks, cfg.Webhooks) {
			t.Errorf("%s: loaded back %+v\nwant %+v", format, got.Webhooks, cfg.Webhooks)
		}
	}
}

func TestWebhooksConfigValidate(t *testing.T) {
	for _, c := range []struct {
		set  func(*WebhooksConfig)
		want string
	}{
		{func(w *WebhooksConfig) {
			w.Endpoints = []WebhookEndpoint{{URL: "ftp://x", Secret: "0123456789abcdefgh"}}
		}, "webhooks"},
		{func(w *WebhooksConfig) { w.Endpoints = []WebhookEndpoint{{URL: "http://x", Secret: "short"}} }, "webhooks"},
		{func(w *WebhooksConfig) { w.Timeout = 0 }, "webhooks.timeout"},
		{func(w *WebhooksConfig) { w.MaxEvents = -1 }, "webhooks.max_events"},
		{func(w *WebhooksConfig) { w.RetryMin, w.RetryMax = time.Minute, time.Second }, "retry_min"},
	} {
		cfg := testConfig()
		c.set(&cfg.Webhooks)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %s, got %v", c.want, err)
		}
	}
}

// With the durable engine the outbox lives in <data_dir>/webhooks, beside
// the store, and both reopen after a restart.
func TestWebhooksOutboxInDataDir(t *testing.T) {
	cfg := testConfig()
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()
	cfg.Webhooks.Endpoints = []WebhookEndpoint{{URL: "http://127.0.0.1:1/", Secret: "0123456789abcdefgh"}}
	for range 2 {
		r := start(t, cfg)
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(cfg.DataDir, "webhooks", "*")); len(m) == 0 {
		t.Fatal("no outbox in <data_dir>/webhooks")
	}
}

func TestWebhooksFromEnvironment(t *testing.T) {
	t.Setenv("HERALD_WEBHOOKS__ENDPOINTS", `[{"url":"https://a.example/h","secret":"0123456789abcdefgh","channels":["chat:*"]}]`)
	t.Setenv("HERALD_WEBHOOKS__RETRY_MAX", "2m")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Webhooks.Endpoints
	if len(e) != 1 || e[0].URL != "https://a.example/h" || e[0].Secret != "0123456789abcdefgh" || !slices.Equal(e[0].Channels, []string{"chat:*"}) || len(e[0].Events) != 0 {
		t.Errorf("endpoints %+v", e)
	}
	if cfg.Webhooks.RetryMax != 2*time.Minute {
		t.Errorf("retry_max %v", cfg.Webhooks.RetryMax)
	}
}

// Events queued while the endpoint is down wait in <data_dir>/webhooks
// across a restart of the server and are delivered by the next run.
func TestWebhooksSurviveServerRestart(t *testing.T) {
	recv := &hookReceiver{secret: "a-webhook-secret-of-some-length"}
	var down sync.Mutex // held while the endpoint answers 503
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !down.TryLock() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		down.Unlock()
		recv.ServeHTTP(w, r)
	}))
	defer hook.Close()
	cfg := testConfig()
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()
	cfg.Webhooks.FlushInterval = 5 * time.Millisecond
	cfg.Webhooks.RetryMin, cfg.Webhooks.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	cfg.Webhooks.Endpoints = []WebhookEndpoint{{URL: hook.URL, Secret: recv.secret, Events: []string{"publish"}}}
	cfg.Namespaces = []node.NamespaceOptions{{Name: "", HistorySize: 10, HistoryTTL: time.Hour}}

	down.Lock()
	r := start(t, cfg)
	for i := range 5 {
		status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, fmt.Sprintf(`{"channel":"news","data":{"i":%d}}`, i))
		wantStatus(t, "publish", status, http.StatusOK, body)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if evs, _ := recv.got(); len(evs) != 0 {
		t.Fatalf("%d events delivered while the endpoint was down", len(evs))
	}
	down.Unlock()

	start(t, cfg)
	testkit.WaitFor(t, 10*time.Second, "the five publish events", func() bool { evs, _ := recv.got(); return len(evs) == 5 })
	evs, _ := recv.got()
	for i, e := range evs {
		if e.Type != "publish" || e.Offset != uint64(i+1) || string(e.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("event %d: %+v", i, e)
		}
	}
}

// Two nodes on one Redis, each with its own outbox: each reports the
// occupancy of its own subscribers, and a publication is reported once, by
// the node that took it.
func TestWebhooksAcrossNodes(t *testing.T) {
	url, _ := testkit.StartRedis(t)
	recv := &hookReceiver{secret: "a-webhook-secret-of-some-length"}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	var nodes []*running
	for range 2 {
		cfg := testConfig()
		cfg.Dev = true
		cfg.Engine, cfg.RedisURL, cfg.EnginePrefix = EngineRedis, url, "hooks"
		cfg.DataDir = t.TempDir()
		cfg.Webhooks.FlushInterval = 5 * time.Millisecond
		cfg.Webhooks.Endpoints = []WebhookEndpoint{{URL: hook.URL, Secret: recv.secret, Events: []string{"occupied", "subscribe", "publish"}}}
		nodes = append(nodes, start(t, cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		ws := n.openWS(t, ctx, nil)
		for i, cmd := range []string{`{"id":1,"method":"connect","params":{}}`, `{"id":2,"method":"subscribe","params":{"channel":"chat:both"}}`} {
			if err := ws.Write(ctx, cws.MessageText, []byte(cmd)); err != nil {
				t.Fatal(err)
			}
			wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == float64(i+1) })
		}
	}
	status, body, _ := nodes[0].do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"chat:both","data":1}`)
	wantStatus(t, "publish", status, http.StatusOK, body)
	testkit.WaitFor(t, 10*time.Second, "both nodes' events", func() bool { evs, _ := recv.got(); return len(evs) >= 5 })

	byType := map[string][]string{}
	evs, _ := recv.got()
	for _, e := range evs {
		byType[e.Type] = append(byType[e.Type], e.Node)
	}
	a, b := nodes[0].srv.node.ID(), nodes[1].srv.node.ID()
	if occ := byType["occupied"]; len(occ) != 2 || occ[0] == occ[1] {
		t.Errorf("occupied reported by %v, want once by each node", occ)
	}
	if subs := byType["subscribe"]; len(subs) != 2 {
		t.Errorf("subscribe reported by %v", subs)
	}
	if pubs := byType["publish"]; len(pubs) != 1 || pubs[0] != a {
		t.Errorf("publish reported by %v, want once by %s (not %s)", pubs, a, b)
	}
}
