package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/testkit"
)

// TestDemoTokens mints a demo token and connects with it: the server knows
// the client by the name it asked for.
func TestDemoTokens(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	r := start(t, cfg)

	status, body, hdr := r.do(t, http.MethodPost, demoTokenPath, "", `{"user":"alice"}`)
	wantStatus(t, "demo token", status, http.StatusOK, body)
	var minted struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &minted); err != nil || minted.Token == "" || minted.ExpiresIn != int(demoTokenTTL.Seconds()) {
		t.Fatalf("demo token answer %s (%v)", body, err)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q: a token must not be cached", hdr.Get("Cache-Control"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := r.openWS(t, ctx, nil)
	connect := `{"id":1,"method":"connect","params":{"token":` + string(mustJSON(t, minted.Token)) + `}}` + "\n" +
		`{"id":2,"method":"subscribe","params":{"channel":"chat:demo"}}` + "\n" +
		`{"id":3,"method":"presence","params":{"channel":"chat:demo"}}`
	if err := ws.Write(ctx, cws.MessageText, []byte(connect)); err != nil {
		t.Fatal(err)
	}
	// Replies may share a frame, which wsRead reads past once it matches.
	var reply, presence map[string]any
	wsRead(t, ctx, ws, func(m map[string]any) bool {
		switch m["id"] {
		case 1.0:
			reply = m
		case 3.0:
			presence = m
		}
		return presence != nil
	})
	if res, _ := reply["result"].(map[string]any); res == nil || res["user"] != "alice" {
		t.Fatalf("connect with a demo token: %v, want user alice", reply)
	}
	if s := string(mustJSON(t, presence)); !strings.Contains(s, `"user":"alice"`) || !strings.Contains(s, `"info":{"name":"alice"}`) {
		t.Errorf("presence %s: want alice with info {name: alice}", s)
	}

	for _, bad := range []struct{ method, body string }{
		{http.MethodGet, ""},
		{http.MethodPost, `{"user":"a,b"}`},
		{http.MethodPost, `{"user":""}`},
		{http.MethodPost, `{"user":"` + strings.Repeat("x", 33) + `"}`},
		{http.MethodPost, `user=alice`},
	} {
		status, body, _ := r.do(t, bad.method, demoTokenPath, "", bad.body)
		if status != http.StatusBadRequest && status != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"code":107`) {
			t.Errorf("%s %q: %d %s, want a 400 or 405 with error code 107", bad.method, bad.body, status, body)
		}
	}

	// Outside dev mode there is no token endpoint.
	prod := start(t, testConfig())
	if status, body, _ := prod.do(t, http.MethodPost, demoTokenPath, "", `{"user":"alice"}`); status == http.StatusOK || strings.Contains(string(body), "token") {
		t.Errorf("demo token outside dev mode: %d %s, want a refusal", status, body)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDemoTicker checks the ticker feed publishes ticks and, after a
// restart, continues from the last prices in history.
func TestDemoTicker(t *testing.T) {
	cfg := testConfig()
	cfg.Dev = true
	cfg.Engine = EngineDurable
	cfg.DataDir = t.TempDir()

	// A tick far from the opening prices, as if the feed had run for long.
	first := start(t, cfg)
	status, body, _ := first.do(t, http.MethodPost, "/api/publish", testKey,
		`{"channel":"`+demoTickerChannel+`","data":{"prices":{"HRLD":500,"NATS":5},"time":1}}`)
	wantStatus(t, "publish", status, http.StatusOK, body)
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}

	cfg.DemoTicker = 10 * time.Millisecond
	r := start(t, cfg)
	var ticks []demoTick
	testkit.WaitFor(t, 10*time.Second, "three ticks in history", func() bool {
		status, body, _ := r.do(t, http.MethodPost, "/api/history", testKey, `{"channel":"`+demoTickerChannel+`","limit":10}`)
		wantStatus(t, "history", status, http.StatusOK, body)
		var res struct {
			Publications []struct {
				Offset uint64          `json:"offset"`
				Data   json.RawMessage `json:"data"`
			} `json:"publications"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("history %s: %v", body, err)
		}
		ticks = ticks[:0]
		for _, p := range res.Publications[1:] { // the first is the tick published above
			var tick demoTick
			if err := json.Unmarshal(p.Data, &tick); err != nil {
				t.Fatalf("tick %s: %v", p.Data, err)
			}
			ticks = append(ticks, tick)
		}
		return len(ticks) >= 3
	})
	for i, tick := range ticks {
		if len(tick.Prices) != len(demoOpenPrices) || tick.Time < time.Now().Add(-time.Minute).UnixMilli() {
			t.Fatalf("tick %d: %+v, want %d prices and a recent time", i, tick, len(demoOpenPrices))
		}
	}
	// A walk of ~0.2% a tick stays near where it restarted, far from the
	// opening prices.
	if p := ticks[0].Prices["HRLD"]; p < 450 || p > 550 {
		t.Errorf("HRLD after the restart: %v, want the walk to continue from 500", p)
	}
	if p := ticks[0].Prices["REDS"]; p < demoOpenPrices["REDS"]*0.9 || p > demoOpenPrices["REDS"]*1.1 {
		t.Errorf("REDS, missing from the last tick: %v, want it near its opening %v", p, demoOpenPrices["REDS"])
	}
}
