package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// metricValue finds the sample line "series value" in a text exposition.
func metricValue(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func (r *running) scrape(t *testing.T) string {
	t.Helper()
	status, body, _ := r.do(t, http.MethodGet, "/metrics", "", "")
	wantStatus(t, "GET /metrics", status, http.StatusOK, body)
	return string(body)
}

// /metrics counts a node's connections, channels, subscriptions and
// publications in and out, times the engine's publishes and counts refused
// tokens, next to the Go runtime's and the process's own metrics.
func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	r := start(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel=metrics:a", nil)
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := bufio.NewScanner(res.Body)
	waitLine := func(prefix string) {
		t.Helper()
		for events.Scan() {
			if strings.HasPrefix(events.Text(), prefix) {
				return
			}
		}
		t.Fatalf("stream ended before %q: %v", prefix, events.Err())
	}
	waitLine("event: subscribed")
	for range 2 {
		status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"metrics:a","data":{"n":1}}`)
		wantStatus(t, "publish", status, http.StatusOK, body)
		waitLine(`data: {"type":"publication"`)
	}
	if status, body, _ := r.do(t, http.MethodGet, "/poll?channel=metrics:a&token=not-a-token", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("poll with a bad token: %d %s", status, body)
	}
	before := r.scrape(t)
	status, hist, _ := r.do(t, http.MethodPost, "/api/history", testKey, `{"channel":"metrics:a"}`)
	wantStatus(t, "history", status, http.StatusOK, hist)

	// The client may read a frame before the writer that sent it, and the
	// hub that queued it, have reported to the metrics.
	var body string
	testkit.WaitFor(t, 10*time.Second, "the fan-outs and the stream's writes to be counted", func() bool {
		body = r.scrape(t)
		fanouts, _ := metricValue(body, `herald_fanout_seconds_count`)
		frames, _ := metricValue(body, `herald_frames_sent_total{transport="sse"}`)
		return fanouts == 2 && frames >= 3
	})
	for series, want := range map[string]float64{
		`herald_connections{transport="sse"}`:                     1,
		`herald_connections{transport="websocket"}`:               0,
		`herald_channels`:                                         1,
		`herald_subscriptions`:                                    1,
		`herald_publications_total`:                               2,
		`herald_deliveries_total`:                                 2,
		`herald_engine_seconds_count{op="publish",result="ok"}`:   2,
		`herald_engine_seconds_count{op="subscribe",result="ok"}`: 1,
		`herald_auth_failures_total{code="101"}`:                  1,
		// One per publication, whatever its number of subscribers.
		`herald_fanout_seconds_count`: 2,
		// The SSE stream's channel keeps both publications; 2 <= 4.
		`herald_history_publications_count{namespace="metrics"}`:         1,
		`herald_history_publications_sum{namespace="metrics"}`:           2,
		`herald_history_publications_bucket{namespace="metrics",le="4"}`: 1,
		`herald_history_publications_bucket{namespace="metrics",le="1"}`: 0,
	} {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("%s = %v (found: %v), want %v", series, got, ok, want)
		}
	}
	// The API's history read is one more engine history call.
	histBefore, _ := metricValue(before, `herald_engine_seconds_count{op="history",result="ok"}`)
	if got, _ := metricValue(body, `herald_engine_seconds_count{op="history",result="ok"}`); got != histBefore+1 {
		t.Errorf("engine history calls went from %v to %v over one history request", histBefore, got)
	}
	// Each publication's frame was written to the stream, and at least one
	// write timed the oldest publication in it; the stream's subscribed
	// event was written too.
	for series, atLeast := range map[string]float64{
		`herald_delivery_latency_seconds_count{transport="sse"}`: 1,
		`herald_frames_sent_total{transport="sse"}`:              3,
	} {
		if got, ok := metricValue(body, series); !ok || got < atLeast {
			t.Errorf("%s = %v (found: %v), want at least %v", series, got, ok, atLeast)
		}
	}
	if got, _ := metricValue(body, `herald_delivery_latency_seconds_count{transport="sse"}`); got > 2 {
		t.Errorf("%v delivery latencies for 2 publications", got)
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := metricValue(body, series); !ok {
			t.Errorf("no %s", series)
		}
	}
	cancel()
	testkit.WaitFor(t, 10*time.Second, "the closed stream to leave the count", func() bool {
		v, ok := metricValue(r.scrape(t), `herald_connections{transport="sse"}`)
		return ok && v == 0
	})
}

func TestMetricsOff(t *testing.T) {
	cfg := testConfig()
	cfg.Metrics = false
	r := start(t, cfg)
	status, body, _ := r.do(t, http.MethodGet, "/metrics", "", "")
	if status == http.StatusOK || strings.Contains(string(body), "herald_") {
		t.Fatalf("metrics off, /metrics answered %d: %.200s", status, body)
	}
}

// /readyz follows the engine: a node whose Redis stops answering is not
// ready, and is again once Redis is back.
func TestReadyzFollowsTheEngine(t *testing.T) {
	url, redis := testkit.StartRedis(t)
	cfg := testConfig()
	cfg.Engine = EngineRedis
	cfg.RedisURL = url
	cfg.EnginePrefix = "readyz"
	r := start(t, cfg)
	ready := func() bool {
		status, _, _ := r.do(t, http.MethodGet, "/readyz", "", "")
		return status == http.StatusOK
	}
	if !ready() {
		t.Fatal("not ready with Redis up")
	}
	redis.Kill(t)
	testkit.WaitFor(t, 20*time.Second, "readyz to fail with Redis down", func() bool { return !ready() })
	redis.Restart(t)
	testkit.WaitFor(t, 30*time.Second, "readyz to pass with Redis back", ready)
}

func TestReadyzDraining(t *testing.T) {
	s := &Server{}
	s.draining.Store(true)
	w := &recorder{header: http.Header{}}
	s.readyz(w, nil)
	if w.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", w.status)
	}
}

// A client that stops reading is disconnected as a slow consumer, and
// counted: once as a slow-consumer disconnect, once under its close code,
// and the queue it left behind as dropped frames.
func TestMetricsSlowConsumer(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	cfg.MaxQueueBytes = 64 << 10
	r := start(t, cfg)

	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	// The client sends its request, then never reads.
	if _, err := fmt.Fprintf(conn, "GET /sse?channel=metrics:slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the stream to subscribe", func() bool {
		v, _ := metricValue(r.scrape(t), `herald_subscriptions`)
		return v == 1
	})
	data := `{"channel":"metrics:slow","data":"` + strings.Repeat("x", 16<<10) + `"}`
	slow := func(body string) bool {
		v, _ := metricValue(body, `herald_slow_consumer_disconnects_total{transport="sse"}`)
		return v == 1
	}
	for i := 0; !slow(r.scrape(t)); i++ {
		if i == 5000 {
			t.Fatal("a client that never reads is still connected after 5000 publications of 16 KiB")
		}
		status, res, _ := r.do(t, http.MethodPost, "/api/publish", testKey, data)
		wantStatus(t, "publish", status, http.StatusOK, res)
	}
	// The disconnect and the discarded queue are reported one after the
	// other; a scrape may fall between them.
	testkit.WaitFor(t, 10*time.Second, "the disconnect code and the dropped queue to be counted", func() bool {
		body := r.scrape(t)
		code, _ := metricValue(body, `herald_disconnects_total{code="4001",transport="sse"}`)
		dropped, _ := metricValue(body, `herald_dropped_frames_total{reason="slow_consumer",transport="sse"}`)
		return code == 1 && dropped >= 1
	})
}

// Engine errors are counted by operation, next to the calls that succeeded.
func TestMetricsEngineErrors(t *testing.T) {
	m := newMetrics()
	m.EngineCall("history", 2*time.Millisecond, errors.New("broker gone"))
	m.EngineCall("history", time.Millisecond, nil)
	m.EngineCall("presence_add", time.Millisecond, errors.New("broker gone"))
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for series, want := range map[string]float64{
		`herald_engine_seconds_count{op="history",result="error"}`:      1,
		`herald_engine_seconds_count{op="history",result="ok"}`:         1,
		`herald_engine_seconds_count{op="presence_add",result="error"}`: 1,
		`herald_engine_seconds_sum{op="history",result="error"}`:        0.002,
	} {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("%s = %v (found: %v), want %v", series, got, ok, want)
		}
	}
}

// A WebSocket client's frames are counted both ways, and a publication it
// receives is timed from its acceptance to the write.
func TestMetricsWebSocket(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := r.openWS(t, ctx, nil)
	for _, cmd := range []string{`{"id":1,"method":"connect","params":{}}`, `{"id":2,"method":"subscribe","params":{"channel":"metrics:ws"}}`} {
		if err := ws.Write(ctx, cws.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	if reply := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 2.0 }); reply["error"] != nil {
		t.Fatalf("subscribe: %v", reply)
	}
	status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"metrics:ws","data":1}`)
	wantStatus(t, "publish", status, http.StatusOK, body)
	wsRead(t, ctx, ws, func(m map[string]any) bool { return m["type"] == "publication" })
	testkit.WaitFor(t, 10*time.Second, "the write of the publication to be counted", func() bool {
		v, _ := metricValue(r.scrape(t), `herald_delivery_latency_seconds_count{transport="websocket"}`)
		return v == 1
	})
	scraped := r.scrape(t)
	if v, _ := metricValue(scraped, `herald_frames_received_total{transport="websocket"}`); v != 2 {
		t.Errorf("frames received: %v, want 2 (connect and subscribe)", v)
	}
	// The connect and subscribe replies and the publication, at least.
	if v, _ := metricValue(scraped, `herald_frames_sent_total{transport="websocket"}`); v < 3 {
		t.Errorf("frames sent: %v, want at least 3", v)
	}
}

// docs/metrics.md names every metric the server exports.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	m.stats = func() node.Stats { return node.Stats{} }
	m.history = func(context.Context, int) []node.HistorySample {
		return []node.HistorySample{{Namespace: "ns", Publications: 1}}
	}
	// Give every labelled metric a series, so the scrape lists it.
	m.EngineCall("publish", time.Millisecond, nil)
	m.FannedOut(time.Microsecond)
	m.Flushed("websocket", 1, time.Millisecond)
	m.Received("websocket")
	m.Dropped("websocket", node.DropSlowConsumer, 1)
	m.Disconnected("websocket", protocol.DisconnectSlowConsumer)
	m.AuthFailed(protocol.ErrUnauthorized.Code)
	m.proxyObserver().ProxyCall("rpc", "ok", time.Millisecond)
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := 0
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		rest, ok := strings.CutPrefix(line, "# HELP herald_")
		if !ok {
			continue
		}
		name := "herald_" + strings.Fields(rest)[0]
		names++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not mention %s", name)
		}
	}
	if names < 14 {
		t.Fatalf("only %d herald_ metrics in the scrape", names)
	}
}

// The backend proxy's calls are counted by kind and result, and timed.
func TestMetricsProxy(t *testing.T) {
	b := newProxyBackend(t)
	cfg := proxyConfig(b)
	// The backend answers this path with no reply at all: unavailable.
	cfg.Proxy.SubscribeURL = b.URL + "/none"
	r := start(t, cfg)
	send := func(method, path, body string) {
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		req.Header.Set("Cookie", "sid=s-alice")
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	send(http.MethodPost, "/rpc", `{"method":"whoami"}`)
	send(http.MethodPost, "/publish", `{"channel":"rooms:x","data":"spam"}`)
	send(http.MethodGet, "/poll?channel=rooms:open-1", "")
	body := r.scrape(t)
	for series, want := range map[string]float64{
		`herald_proxy_requests_total{kind="connect",result="ok"}`:            3,
		`herald_proxy_requests_total{kind="rpc",result="ok"}`:                1,
		`herald_proxy_requests_total{kind="publish",result="error"}`:         1,
		`herald_proxy_requests_total{kind="subscribe",result="unavailable"}`: 1,
		`herald_proxy_duration_seconds_count{kind="connect"}`:                3,
		`herald_proxy_duration_seconds_count{kind="rpc"}`:                    1,
	} {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, want)
		}
	}
	if sum, ok := metricValue(body, `herald_proxy_duration_seconds_sum{kind="rpc"}`); !ok || sum <= 0 {
		t.Errorf("rpc duration sum %v (found %v), want above 0", sum, ok)
	}
}
