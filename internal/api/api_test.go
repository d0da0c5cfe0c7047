package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "s3cret-key"

// newNode starts a node on a fresh memory engine and shuts it down when the
// test ends.
func newNode(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	cfg.Engine = memory.New(memory.Config{})
	return startNode(t, cfg)
}

// startNode starts a node on cfg.Engine and shuts it down when the test ends.
func startNode(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	cfg.AllowAnonymous = true
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	return n
}

// apiServer serves a dev node's server API with testKey.
func apiServer(t *testing.T, cfg Config) (*httptest.Server, *node.Node) {
	t.Helper()
	if cfg.Node == nil {
		cfg.Node = newNode(t, node.Config{Dev: true})
	}
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv, cfg.Node
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, key, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "apikey "+key)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

// wantError checks an error response's status, JSON body and code.
func wantError(t *testing.T, r response, status int, code uint32) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct{ Error *protocol.Error }
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error == nil {
		t.Fatalf("body %s is not a JSON error: %v", r.body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("error %+v, want code %d with a message", body.Error, code)
	}
}

func wantOK(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func TestAuth(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey})
	url := srv.URL + "/api/info"
	t.Run("missing", func(t *testing.T) {
		r := post(t, url, "", "{}")
		wantError(t, r, http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
	t.Run("wrong", func(t *testing.T) {
		wantError(t, post(t, url, "not-the-key", "{}"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	})
	t.Run("prefix of key", func(t *testing.T) {
		wantError(t, post(t, url, testKey[:4], "{}"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	})
	t.Run("other scheme", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+testKey)
		wantError(t, do(t, req), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	})
	t.Run("unknown endpoint without key", func(t *testing.T) {
		wantError(t, post(t, srv.URL+"/api/nope", "", "{}"), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	})
	t.Run("right, scheme case-insensitive", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
		req.Header.Set("Authorization", "APIKey "+testKey)
		var info InfoResult
		wantOK(t, do(t, req), &info)
	})
}

func TestNoKeyConfigured(t *testing.T) {
	t.Run("closed outside dev mode", func(t *testing.T) {
		srv, _ := apiServer(t, Config{Node: newNode(t, node.Config{})})
		r := post(t, srv.URL+"/api/info", "anything", "{}")
		wantError(t, r, http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
		if !bytes.Contains(r.body, []byte("no API key is configured")) {
			t.Errorf("body %s does not say no key is configured", r.body)
		}
	})
	t.Run("open in dev mode", func(t *testing.T) {
		srv, _ := apiServer(t, Config{Dev: true})
		var info InfoResult
		wantOK(t, post(t, srv.URL+"/api/info", "", "{}"), &info)
	})
}

func TestPublishAndHistory(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey})
	var epoch string
	for i := 1; i <= 3; i++ {
		var res protocol.PublishResult
		wantOK(t, post(t, srv.URL+"/api/publish", testKey,
			fmt.Sprintf(`{"channel":"news:today","data":{"n":%d},"tags":{"k":"v"}}`, i)), &res)
		if res.Offset != uint64(i) || res.Epoch == "" {
			t.Fatalf("publish %d: %+v", i, res)
		}
		if epoch != "" && res.Epoch != epoch {
			t.Fatalf("epoch changed from %q to %q", epoch, res.Epoch)
		}
		epoch = res.Epoch
	}

	var hist protocol.HistoryResult
	wantOK(t, post(t, srv.URL+"/api/history", testKey, `{"channel":"news:today"}`), &hist)
	if len(hist.Publications) != 3 || hist.Offset != 3 || hist.Epoch != epoch {
		t.Fatalf("history %+v", hist)
	}
	for i, p := range hist.Publications {
		if p.Offset != uint64(i+1) || string(p.Data) != fmt.Sprintf(`{"n":%d}`, i+1) || p.Tags["k"] != "v" {
			t.Errorf("publication %d: %+v", i, p)
		}
	}

	body := fmt.Sprintf(`{"channel":"news:today","since":{"epoch":%q,"offset":1},"limit":1}`, epoch)
	wantOK(t, post(t, srv.URL+"/api/history", testKey, body), &hist)
	if len(hist.Publications) != 1 || hist.Publications[0].Offset != 2 {
		t.Fatalf("history since 1, limit 1: %+v", hist)
	}
	wantOK(t, post(t, srv.URL+"/api/history", testKey, `{"channel":"news:today","reverse":true,"limit":2}`), &hist)
	if len(hist.Publications) != 2 || hist.Publications[0].Offset != 3 {
		t.Fatalf("reverse history: %+v", hist)
	}

	t.Run("idempotency key", func(t *testing.T) {
		var a, b protocol.PublishResult
		body := `{"channel":"news:once","data":"x","idempotency_key":"k1"}`
		wantOK(t, post(t, srv.URL+"/api/publish", testKey, body), &a)
		wantOK(t, post(t, srv.URL+"/api/publish", testKey, body), &b)
		if a != b {
			t.Fatalf("retried publish stored again: %+v then %+v", a, b)
		}
	})
	t.Run("ephemeral", func(t *testing.T) {
		var res protocol.PublishResult
		wantOK(t, post(t, srv.URL+"/api/publish", testKey, `{"channel":"news:live","data":1,"ephemeral":true}`), &res)
		if res.Offset != 0 {
			t.Fatalf("ephemeral publication got offset %d", res.Offset)
		}
	})
	t.Run("stale epoch", func(t *testing.T) {
		r := post(t, srv.URL+"/api/history", testKey, `{"channel":"news:today","since":{"epoch":"other","offset":1}}`)
		wantError(t, r, http.StatusBadRequest, protocol.ErrInvalidPosition.Code)
	})
}

func TestPublishErrors(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey, MaxBodyBytes: 1024})
	url := srv.URL + "/api/publish"
	cases := []struct {
		name   string
		body   string
		status int
		code   uint32
	}{
		{"bad JSON", `{"channel":`, http.StatusBadRequest, protocol.ErrBadRequest.Code},
		{"not an object", `[1]`, http.StatusBadRequest, protocol.ErrBadRequest.Code},
		{"unknown field", `{"chanel":"a","data":1}`, http.StatusBadRequest, protocol.ErrBadRequest.Code},
		{"trailing data", `{"channel":"a","data":1} {}`, http.StatusBadRequest, protocol.ErrBadRequest.Code},
		{"no data", `{"channel":"a"}`, http.StatusBadRequest, protocol.ErrBadRequest.Code},
		{"bad channel", `{"channel":"a b","data":1}`, http.StatusBadRequest, protocol.ErrInvalidChannel.Code},
		{"empty body", ``, http.StatusBadRequest, protocol.ErrInvalidChannel.Code},
		{"oversize", `{"channel":"a","data":"` + strings.Repeat("x", 2048) + `"}`, http.StatusRequestEntityTooLarge, protocol.ErrMessageTooLarge.Code},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, post(t, url, testKey, c.body), c.status, c.code)
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "apikey "+testKey)
		r := do(t, req)
		wantError(t, r, http.StatusMethodNotAllowed, protocol.ErrBadRequest.Code)
		if r.header.Get("Allow") != http.MethodPost {
			t.Errorf("Allow %q", r.header.Get("Allow"))
		}
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		wantError(t, post(t, srv.URL+"/api/nope", testKey, `{}`), http.StatusNotFound, protocol.ErrMethodNotFound.Code)
	})
}

func TestPublicationTooLarge(t *testing.T) {
	n := newNode(t, node.Config{Dev: true, MaxPublicationSize: 16})
	srv, _ := apiServer(t, Config{Node: n, Key: testKey})
	r := post(t, srv.URL+"/api/publish", testKey, `{"channel":"a","data":"`+strings.Repeat("x", 32)+`"}`)
	wantError(t, r, http.StatusRequestEntityTooLarge, protocol.ErrMessageTooLarge.Code)
}

func TestBroadcast(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey})
	// Two publications on b first, so per-channel offsets are told apart.
	for range 2 {
		post(t, srv.URL+"/api/publish", testKey, `{"channel":"b","data":0}`)
	}
	var res BroadcastResult
	wantOK(t, post(t, srv.URL+"/api/broadcast", testKey, `{"channels":["a","b","bad channel"],"data":{"x":1}}`), &res)
	if len(res.Results) != 3 {
		t.Fatalf("results %+v", res)
	}
	a, b, bad := res.Results[0], res.Results[1], res.Results[2]
	if a.Channel != "a" || a.PublishResult == nil || a.Offset != 1 || a.Epoch == "" || a.Error != nil {
		t.Errorf("a: %+v", a)
	}
	if b.Channel != "b" || b.PublishResult == nil || b.Offset != 3 || b.Error != nil {
		t.Errorf("b: %+v", b)
	}
	if bad.Channel != "bad channel" || bad.PublishResult != nil || bad.Error == nil || bad.Error.Code != protocol.ErrInvalidChannel.Code {
		t.Errorf("bad: %+v", bad)
	}
	// Each outcome is one shape or the other, never both.
	var raw struct{ Results []map[string]json.RawMessage }
	_ = json.Unmarshal(post(t, srv.URL+"/api/broadcast", testKey, `{"channels":["a","a b"],"data":1}`).body, &raw)
	if _, ok := raw.Results[0]["error"]; ok || len(raw.Results[0]) != 3 {
		t.Errorf("success outcome %v", raw.Results[0])
	}
	if _, ok := raw.Results[1]["offset"]; ok || len(raw.Results[1]) != 2 {
		t.Errorf("failed outcome %v", raw.Results[1])
	}

	wantError(t, post(t, srv.URL+"/api/broadcast", testKey, `{"channels":[],"data":1}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantError(t, post(t, srv.URL+"/api/broadcast", testKey, `{"channels":["a","a"],"data":1}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantError(t, post(t, srv.URL+"/api/broadcast", testKey, `{"channels":["a"],"data":nope}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
}

// streamTransport is a do-nothing transport for sessions that only need to
// exist: subscribed, counted and present.
type streamTransport struct{}

func (streamTransport) Name() string { return "test" }
func (streamTransport) Wake()        {}

func subscribe(t *testing.T, n *node.Node, channels ...string) *node.Session {
	t.Helper()
	s, err := n.NewSession(streamTransport{}, node.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Finish)
	if err := s.SubscribeStream(context.Background(), protocol.CanonicalChannels(channels), nil, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestChannelsInfoPresence(t *testing.T) {
	srv, n := apiServer(t, Config{Key: testKey})
	s1 := subscribe(t, n, "chat:a", "chat:b", "news")
	subscribe(t, n, "chat:a")

	var chans ChannelsResult
	wantOK(t, post(t, srv.URL+"/api/channels", testKey, `{}`), &chans)
	want := map[string]ChannelStats{"chat:a": {2}, "chat:b": {1}, "news": {1}}
	if fmt.Sprint(chans.Channels) != fmt.Sprint(want) {
		t.Errorf("channels %v, want %v", chans.Channels, want)
	}
	var chat ChannelsResult
	wantOK(t, post(t, srv.URL+"/api/channels", testKey, `{"pattern":"chat:*"}`), &chat)
	if len(chat.Channels) != 2 || chat.Channels["chat:a"].NumSubscribers != 2 {
		t.Errorf("chat:* channels %v", chat.Channels)
	}
	wantError(t, post(t, srv.URL+"/api/channels", testKey, `{"pattern":"["}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)

	var info InfoResult
	wantOK(t, post(t, srv.URL+"/api/info", testKey, ``), &info)
	if info.Node != n.ID() || len(info.Nodes) != 1 || info.Nodes[0].ID != n.ID() || info.Nodes[0].NumClients != 2 || info.Nodes[0].NumChannels != 3 {
		t.Errorf("info %+v", info)
	}

	var pres protocol.PresenceResult
	wantOK(t, post(t, srv.URL+"/api/presence", testKey, `{"channel":"chat:b"}`), &pres)
	if len(pres.Clients) != 1 || pres.Clients[s1.ID()].Client != s1.ID() {
		t.Errorf("presence %+v", pres)
	}
	var stats protocol.PresenceStatsResult
	wantOK(t, post(t, srv.URL+"/api/presence_stats", testKey, `{"channel":"chat:a"}`), &stats)
	if stats.NumClients != 2 {
		t.Errorf("presence stats %+v", stats)
	}
	var empty protocol.PresenceResult
	wantOK(t, post(t, srv.URL+"/api/presence", testKey, `{"channel":"chat:empty"}`), &empty)
	if empty.Clients == nil || len(empty.Clients) != 0 {
		t.Errorf("empty presence %+v", empty)
	}
}

func TestPresenceNotAvailable(t *testing.T) {
	n := newNode(t, node.Config{Namespaces: []node.NamespaceOptions{{Name: ""}}})
	srv, _ := apiServer(t, Config{Node: n, Key: testKey})
	wantError(t, post(t, srv.URL+"/api/presence", testKey, `{"channel":"x"}`), http.StatusServiceUnavailable, protocol.ErrNotAvailable.Code)
	wantError(t, post(t, srv.URL+"/api/history", testKey, `{"channel":"x"}`), http.StatusServiceUnavailable, protocol.ErrNotAvailable.Code)
	wantError(t, post(t, srv.URL+"/api/publish", testKey, `{"channel":"other:x","data":1}`), http.StatusNotFound, protocol.ErrUnknownChannel.Code)
}
