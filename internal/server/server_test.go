package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	// nbio logs engine starts and stops through a process-wide logger.
	logging.SetLevel(logging.LevelNone)
	goleak.VerifyTestMain(m, ignoreNBIO)
}

// ignoreNBIO skips the task pools of nbio's package-level DefaultEngine,
// which start at init and live as long as the process.
var ignoreNBIO = goleak.IgnoreTopFunction("github.com/lesismal/nbio/taskpool.New.func3")

const testKey = "test-key"

// testConfig is a memory-engine server on a free loopback port.
func testConfig() Config {
	cfg := Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = EngineMemory
	cfg.APIKey = testKey
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	// Tests that want dev mode's ticker feed turn it on themselves.
	cfg.DemoTicker = 0
	cfg.TURN.Addr = "127.0.0.1:0"
	return cfg
}

// running is a server under test, serving in its own goroutine.
type running struct {
	srv    *Server
	url    string
	cancel context.CancelFunc
	done   chan error
	client *http.Client
	once   sync.Once
	err    error
}

// start runs a server built from cfg and waits until it listens. The server
// is stopped when the test ends if the test has not stopped it.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, cancel: cancel, done: make(chan error, 1), client: &http.Client{Transport: &http.Transport{}}}
	go func() { r.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-r.done:
		cancel()
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server not listening after 10s")
	}
	r.url = "http://" + srv.Addr()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// stop cancels Run's context and returns Run's result; later calls return
// the same result.
func (r *running) stop(t *testing.T) error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(15 * time.Second):
			r.err = errors.New("Run did not return within 15s of cancel")
		}
		r.client.CloseIdleConnections()
	})
	return r.err
}

func (r *running) do(t *testing.T, method, path, key, body string) (int, []byte, http.Header) {
	t.Helper()
	authorization := ""
	if key != "" {
		authorization = "apikey " + key
	}
	return r.doAuth(t, method, path, authorization, body)
}

// doAuth is do with any Authorization header value ("" for none).
func (r *running) doAuth(t *testing.T, method, path, authorization, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b, res.Header
}

func wantStatus(t *testing.T, what string, got, want int, body []byte) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, got, want, body)
	}
}

func TestServe(t *testing.T) {
	cfg := testConfig()
	cfg.Namespaces = []node.NamespaceOptions{{Name: "news", HistorySize: 10, HistoryTTL: time.Hour}}
	cfg.AllowAnonymous = true
	r := start(t, cfg)

	status, body, _ := r.do(t, http.MethodGet, "/healthz", "", "")
	wantStatus(t, "healthz", status, http.StatusOK, body)

	status, body, hdr := r.do(t, http.MethodGet, "/", "", "")
	wantStatus(t, "demo page", status, http.StatusOK, body)
	if !bytes.Contains(body, []byte("<title>Herald demo</title>")) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Errorf("GET / is not the demo page: %s %.200s", hdr.Get("Content-Type"), body)
	}
	status, body, _ = r.do(t, http.MethodGet, "/demo.js", "", "")
	wantStatus(t, "demo.js", status, http.StatusOK, body)
	status, body, _ = r.do(t, http.MethodGet, "/sdk/herald.min.js", "", "")
	wantStatus(t, "SDK bundle", status, http.StatusOK, body)
	status, body, _ = r.do(t, http.MethodGet, "/no-such-page", "", "")
	wantStatus(t, "unknown page", status, http.StatusNotFound, body)

	for i := 1; i <= 2; i++ {
		status, body, _ = r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"news:today","data":{"n":1}}`)
		wantStatus(t, "api publish", status, http.StatusOK, body)
		var res protocol.PublishResult
		if err := json.Unmarshal(body, &res); err != nil || res.Offset != uint64(i) || res.Epoch == "" {
			t.Fatalf("api publish %d: %s (%v)", i, body, err)
		}
	}
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", "wrong", `{"channel":"news:today","data":1}`)
	wantStatus(t, "api publish with a wrong key", status, http.StatusUnauthorized, body)

	// The namespace is closed to clients, anonymous ones included: its
	// options left access unset.
	status, body, _ = r.do(t, http.MethodPost, "/publish", "", `{"channel":"news:today","data":1}`)
	wantStatus(t, "client publish", status, http.StatusForbidden, body)
	status, body, _ = r.do(t, http.MethodGet, "/sse?channel=news:today", "", "")
	wantStatus(t, "sse", status, http.StatusForbidden, body)
	status, body, _ = r.do(t, http.MethodGet, "/poll?channel=news:today", "", "")
	wantStatus(t, "poll", status, http.StatusForbidden, body)

	if err := r.stop(t); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	goleak.VerifyNone(t, ignoreNBIO)
}

func TestSecureByDefault(t *testing.T) {
	cfg := testConfig()
	cfg.APIKey = ""
	r := start(t, cfg)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/sse?channel=x", ""},
		{http.MethodGet, "/poll?channel=x", ""},
		{http.MethodPost, "/publish", `{"channel":"x","data":1}`},
	} {
		status, body, _ := r.do(t, c.method, c.path, "", c.body)
		wantStatus(t, c.path, status, http.StatusUnauthorized, body)
		if !bytes.Contains(body, []byte(`"code":101`)) || !bytes.Contains(body, []byte("token required")) {
			t.Errorf("%s: body %s, want error 101 token required", c.path, body)
		}
	}
	status, body, _ := r.do(t, http.MethodGet, "/sse?channel=chat:x", "", "")
	wantStatus(t, "anonymous client, unlisted namespace", status, http.StatusUnauthorized, body)
	status, body, _ = r.do(t, http.MethodPost, "/api/info", "any", `{}`)
	wantStatus(t, "api without a configured key", status, http.StatusUnauthorized, body)
	if !bytes.Contains(body, []byte("no API key is configured")) {
		t.Errorf("401 body does not say why: %s", body)
	}
}

// sseEvent reads server-sent events until one named want ("" for
// publications, which are unnamed) and returns its data.
func sseEvent(t *testing.T, br *bufio.Reader, want string) string {
	t.Helper()
	var name, data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading SSE stream for a %q event: %v", want, err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && data != "":
			if name == want {
				return data
			}
			name, data = "", ""
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// openWS opens a WebSocket to the server with header, closed when the test
// ends.
func (r *running) openWS(t *testing.T, ctx context.Context, header http.Header) *cws.Conn {
	t.Helper()
	ws, _, err := cws.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", &cws.DialOptions{HTTPClient: r.client, HTTPHeader: header})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// wsRead reads frames until one holds a message matching want, and returns it.
func wsRead(t *testing.T, ctx context.Context, c *cws.Conn, want func(map[string]any) bool) map[string]any {
	t.Helper()
	for {
		line, ok := wsUnread.next(c)
		if !ok {
			_, frame, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("websocket read: %v", err)
			}
			wsUnread.put(t, c, bytes.Split(frame, []byte("\n")))
			continue
		}
		var msg map[string]any
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Fatalf("bad frame line %q: %v", line, err)
		}
		if want(msg) {
			return msg
		}
	}
}

// wsUnread keeps the lines of a WebSocket message that wsRead has not
// looked at yet: the server packs replies and pushes into one message, and
// a reply after the one a test waits for must still be there for its next
// wsRead.
var wsUnread unreadLines

type unreadLines struct {
	mu    sync.Mutex
	lines map[*cws.Conn][][]byte
}

func (u *unreadLines) next(c *cws.Conn) ([]byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	q := u.lines[c]
	if len(q) == 0 {
		return nil, false
	}
	u.lines[c] = q[1:]
	return q[0], true
}

func (u *unreadLines) put(t *testing.T, c *cws.Conn, lines [][]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lines == nil {
		u.lines = make(map[*cws.Conn][][]byte)
	}
	if _, seen := u.lines[c]; !seen {
		t.Cleanup(func() {
			u.mu.Lock()
			delete(u.lines, c)
			u.mu.Unlock()
		})
	}
	u.lines[c] = append(u.lines[c], lines...)
}

// TestClientsAndShutdown drives one WebSocket and one SSE client through a
// dev server, then checks that shutdown tells both to reconnect (code 4000)
// and completes: http.Server.Shutdown alone would wait on both.
func TestClientsAndShutdown(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cfg := testConfig()
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel=chat:demo", nil)
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	wantStatus(t, "sse", res.StatusCode, http.StatusOK, nil)
	sse := bufio.NewReader(res.Body)
	sseEvent(t, sse, "subscribed")

	ws := r.openWS(t, ctx, nil)
	send := func(s string) {
		if err := ws.Write(ctx, cws.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"id":1,"method":"connect","params":{}}` + "\n" + `{"id":2,"method":"subscribe","params":{"channel":"chat:demo"}}`)
	if reply := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 2.0 }); reply["error"] != nil {
		t.Fatalf("subscribe: %v", reply)
	}

	// A publish over HTTP reaches both clients.
	status, body, _ := r.do(t, http.MethodPost, "/publish", "", `{"channel":"chat:demo","data":{"text":"hi"}}`)
	wantStatus(t, "publish", status, http.StatusOK, body)
	if data := sseEvent(t, sse, ""); !strings.Contains(data, `"data":{"text":"hi"}`) || !strings.Contains(data, `"offset":1`) {
		t.Fatalf("SSE publication %s", data)
	}
	pub := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["type"] == "publication" })
	if pub["offset"] != 1.0 || pub["channel"] != "chat:demo" {
		t.Fatalf("WebSocket publication %v", pub)
	}
	// And a WebSocket publish reaches the SSE client.
	send(`{"id":3,"method":"publish","params":{"channel":"chat:demo","data":"from ws"}}`)
	if data := sseEvent(t, sse, ""); !strings.Contains(data, `"data":"from ws"`) {
		t.Fatalf("SSE publication %s", data)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	if data := sseEvent(t, sse, "disconnect"); !strings.Contains(data, `"code":4000`) {
		t.Errorf("SSE disconnect at shutdown: %s, want code 4000", data)
	}
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if code := cws.CloseStatus(err); code != 4000 {
				t.Errorf("WebSocket closed with %v (%v), want 4000", code, err)
			}
			break
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ws.CloseNow()
	res.Body.Close()
	goleak.VerifyNone(t, before)
}

// TestDurableRestart checks that history written through the API survives
// a restart of the server on the same data directory.
func TestDurableRestart(t *testing.T) {
	cfg := testConfig()
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()
	cfg.Namespaces = []node.NamespaceOptions{{Name: "", HistorySize: 100, HistoryTTL: time.Hour}}

	r := start(t, cfg)
	var epoch string
	for i := 1; i <= 3; i++ {
		status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, fmt.Sprintf(`{"channel":"log","data":%d}`, i))
		wantStatus(t, "publish", status, http.StatusOK, body)
		var res protocol.PublishResult
		_ = json.Unmarshal(body, &res)
		epoch = res.Epoch
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	r = start(t, cfg)
	status, body, _ := r.do(t, http.MethodPost, "/api/history", testKey, `{"channel":"log"}`)
	wantStatus(t, "history", status, http.StatusOK, body)
	var hist protocol.HistoryResult
	if err := json.Unmarshal(body, &hist); err != nil {
		t.Fatal(err)
	}
	if hist.Epoch != epoch || hist.Offset != 3 || len(hist.Publications) != 3 || string(hist.Publications[2].Data) != "3" {
		t.Fatalf("history after restart: %s (epoch before %q)", body, epoch)
	}
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"log","data":4}`)
	wantStatus(t, "publish after restart", status, http.StatusOK, body)
	if !bytes.Contains(body, []byte(`"offset":4`)) {
		t.Fatalf("publish after restart: %s", body)
	}
}

// A server that is built but never serves still releases its store in Run.
func TestRunReleasesStore(t *testing.T) {
	cfg := testConfig()
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := first.Run(ctx); err != nil {
		t.Fatalf("Run with a done context: %v", err)
	}
	if err := first.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}
	start(t, cfg) // the store is free again
}

func TestRunListenError(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig()
	cfg.Addr = ln.Addr().String()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a busy port: %v", err)
	}
	if srv.Addr() != "" {
		t.Errorf("Addr %q after a failed listen", srv.Addr())
	}
	goleak.VerifyNone(t, before)
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig()
	cfg.Engine = "nope"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "engine") {
		t.Fatalf("New: %v", err)
	}
}

func TestUnknownEnvironmentWarned(t *testing.T) {
	t.Setenv("HERALD_APIKEY", "typo")
	var logs bytes.Buffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "HERALD_APIKEY") {
		t.Errorf("no warning about HERALD_APIKEY in logs:\n%s", logs.String())
	}
}

// A draining node is alive (healthz) but takes no new clients (readyz, in
// TestReadyzDraining).
func TestHealthzDraining(t *testing.T) {
	s := &Server{}
	s.draining.Store(true)
	w := &recorder{header: http.Header{}}
	s.healthz(w, nil)
	if w.status != 0 && w.status != http.StatusOK || !strings.Contains(w.body.String(), "draining") {
		t.Fatalf("healthz while draining: %d %s, want 200 draining", w.status, w.body.String())
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func TestOriginChecker(t *testing.T) {
	req := func(host, origin string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://"+host+"/ws", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	strict := originChecker(false, []string{"https://App.example.com/"})
	for _, c := range []struct {
		host, origin string
		want         bool
	}{
		{"herald.example.com", "", true},
		{"herald.example.com", "https://herald.example.com", true},
		{"127.0.0.1:8000", "http://127.0.0.1:8000", true},
		{"herald.example.com", "https://app.example.com", true},
		{"herald.example.com", "https://evil.example.com", false},
		{"herald.example.com", "null", false},
		{"127.0.0.1:8000", "http://127.0.0.1:9000", false},
	} {
		if got := strict(req(c.host, c.origin)); got != c.want {
			t.Errorf("host %s origin %q: %v, want %v", c.host, c.origin, got, c.want)
		}
	}
	for _, check := range []func(*http.Request) bool{originChecker(true, nil), originChecker(false, []string{"*"})} {
		if !check(req("a.example", "https://b.example")) {
			t.Error("dev mode or * refused a foreign origin")
		}
	}
}

func TestPprofListener(t *testing.T) {
	cfg := Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = "memory"
	cfg.PprofAddr = "127.0.0.1:0"
	cfg.LogLevel = "error"
	logs := &testkit.LockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	m := regexp.MustCompile(`pprof_addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		cancel()
		<-done
		t.Fatalf("no pprof address logged:\n%s", logs.String())
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + m[1] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof answered %d: %.200s", resp.StatusCode, body)
	}
	// The public address does not serve profiles.
	resp, err = client.Get("http://" + srv.Addr() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("public address serves /debug/pprof/")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
