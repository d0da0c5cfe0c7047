package server

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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

	body := r.scrape(t)
	for series, want := range map[string]float64{
		`herald_connections{transport="sse"}`:              1,
		`herald_connections{transport="websocket"}`:        0,
		`herald_channels`:                                  1,
		`herald_subscriptions`:                             1,
		`herald_publications_total`:                        2,
		`herald_deliveries_total`:                          2,
		`herald_engine_publish_seconds_count{result="ok"}`: 2,
		`herald_auth_failures_total{code="101"}`:           1,
	} {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("%s = %v (found: %v), want %v", series, got, ok, want)
		}
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
