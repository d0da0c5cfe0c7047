package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/hooks/webhook"
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

	ws, _, err := cws.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", &cws.DialOptions{HTTPClient: r.client})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(s string) {
		if err := ws.Write(ctx, cws.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"id":1,"method":"connect","params":{}}` + "\n" + `{"id":2,"method":"subscribe","params":{"channel":"chat:hooks"}}`)
	connected := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 1.0 })
	client := connected["result"].(map[string]any)["client"].(string)
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
