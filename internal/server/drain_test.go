package server

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/testkit"
)

// told is what one client heard when the server drained.
type told struct {
	transport string
	at        time.Time
	reconnect bool // told to reconnect: close code 4000, or a long poll answered
	detail    string
}

// TestDrainTellsEveryTransportSpreadOverTheWindow holds WebSocket, SSE and
// long-polling clients on a server and shuts it down: each must be told to
// reconnect, and the times they are told must span most of drain_spread.
func TestDrainTellsEveryTransportSpreadOverTheWindow(t *testing.T) {
	const perTransport = 8
	// Short enough that 3·perTransport clients fill it at 10 ms apart (the
	// node's cap per client), so the window is the configured one.
	const spread = 200 * time.Millisecond
	cfg := testConfig()
	cfg.Dev = true
	cfg.DrainSpread = spread
	cfg.ConnectionRate = 0
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	var heard []told
	record := func(x told) {
		mu.Lock()
		heard = append(heard, x)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wsURL := "ws" + strings.TrimPrefix(r.url, "http") + "/ws"
	for range perTransport {
		ws, _, err := cws.Dial(ctx, wsURL, &cws.DialOptions{HTTPClient: r.client})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect","params":{}}`+"\n"+`{"id":2,"method":"subscribe","params":{"channel":"d:x"}}`)); err != nil {
			t.Fatal(err)
		}
		wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == 2.0 })
		wg.Go(func() {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					code := cws.CloseStatus(err)
					record(told{"websocket", time.Now(), code == 4000, err.Error()})
					return
				}
			}
		})
	}
	for range perTransport {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel=d:x", nil)
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		sseEvent(t, br, "subscribed")
		wg.Go(func() {
			var event string
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					record(told{"sse", time.Now(), false, "stream ended without a disconnect event: " + err.Error()})
					return
				}
				if strings.HasPrefix(line, "event: ") {
					event = strings.TrimSpace(strings.TrimPrefix(line, "event: "))
				}
				if event == "disconnect" && strings.HasPrefix(line, "data: ") {
					record(told{"sse", time.Now(), strings.Contains(line, `"code":4000`), line})
					return
				}
			}
		})
	}
	for range perTransport {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/poll?channel=d:x&timeout=30", nil)
			res, err := r.client.Do(req)
			if err != nil {
				record(told{"poll", time.Now(), false, err.Error()})
				return
			}
			res.Body.Close()
			record(told{"poll", time.Now(), res.StatusCode == http.StatusOK, res.Status})
		})
	}
	// WebSocket and SSE subscribers and waiting polls all hold the channel.
	testkit.WaitFor(t, 10*time.Second, "every client to hold the channel", func() bool {
		return r.srv.node.Channels()["d:x"] == 3*perTransport
	})

	began := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(heard) != 3*perTransport {
		t.Fatalf("%d clients heard of the drain, want %d", len(heard), 3*perTransport)
	}
	first, last := heard[0].at, heard[0].at
	byTransport := map[string]int{}
	for _, h := range heard {
		if !h.reconnect {
			t.Errorf("%s client was not told to reconnect: %s", h.transport, h.detail)
		}
		byTransport[h.transport]++
		first, last = minTime(first, h.at), maxTime(last, h.at)
	}
	if byTransport["websocket"] != perTransport || byTransport["sse"] != perTransport || byTransport["poll"] != perTransport {
		t.Errorf("told by transport: %v", byTransport)
	}
	t.Logf("%d clients told over %v (drain_spread %v); the last %v after shutdown began", len(heard), last.Sub(first), spread, last.Sub(began))
	if span := last.Sub(first); span < spread/2 {
		t.Errorf("clients were told within %v of a %v drain_spread: not spread", span, spread)
	}
	if took := last.Sub(began); took > spread+2*time.Second {
		t.Errorf("the last client was told %v after shutdown began (drain_spread %v)", took, spread)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestDrainSpreadIsBoundedByShutdownTimeout(t *testing.T) {
	cfg := Config{DrainSpread: time.Minute, ShutdownTimeout: 8 * time.Second}
	if got := cfg.drainSpread(); got != 6*time.Second {
		t.Fatalf("drainSpread = %v, want 6s (three quarters of shutdown_timeout)", got)
	}
	cfg.DrainSpread = time.Second
	if got := cfg.drainSpread(); got != time.Second {
		t.Fatalf("drainSpread = %v, want 1s", got)
	}
}
