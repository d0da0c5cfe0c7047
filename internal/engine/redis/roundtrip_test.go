package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/testkit"
)

// monitor is a MONITOR connection: it reads every command the server runs,
// with the client that sent it ("lua" for a script's own calls).
type monitor struct {
	conn net.Conn
	r    *bufio.Reader
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial for MONITOR: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &monitor{conn: conn, r: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		t.Fatalf("MONITOR: %v", err)
	}
	if line, err := m.r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	return m
}

// monitored is one command as MONITOR reports it.
type monitored struct {
	source string // "127.0.0.1:port", or "lua" inside a script
	name   string // upper case
}

// until returns the commands run before the ECHO of marker, which the
// caller sends once the commands it wants to see have been answered.
func (m *monitor) until(t *testing.T, marker string) []monitored {
	t.Helper()
	var out []monitored
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read MONITOR: %v (after %d commands)", err, len(out))
		}
		// +1733540000.123456 [0 127.0.0.1:40000] "EVALSHA" "..." ...
		_, rest, _ := strings.Cut(line, " [")
		client, args, ok := strings.Cut(rest, "] ")
		_, source, _ := strings.Cut(client, " ")
		name, _, _ := strings.Cut(strings.TrimPrefix(args, `"`), `"`)
		if !ok {
			t.Fatalf("MONITOR line %q", line)
		}
		if strings.EqualFold(name, "ECHO") && strings.Contains(args, marker) {
			return out
		}
		out = append(out, monitored{source: source, name: strings.ToUpper(name)})
	}
}

// TestPublishIsOneScriptCall watches, with MONITOR, what the engine sends
// Redis for N publishes to a subscribed channel, half with idempotency keys:
// N script calls and nothing else, so a publish (offset, history append,
// trim, idempotency record and pub/sub) is one round trip.
func TestPublishIsOneScriptCall(t *testing.T) {
	url, r := testkit.StartRedis(t)
	if r == nil {
		t.Skipf("watches every command its Redis runs, so it needs a redis-server of its own, not the shared one of %s", testkit.RedisEnv)
	}
	e := newEngine(t, url, 0)
	if err := e.Start(t.Context(), "node-1", enginetest.NewRecorder()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	const ch = "chat:count"
	if err := e.Subscribe(t.Context(), ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	opts := engine.PublishOptions{HistorySize: 10, HistoryTTL: 60e9}
	// The first publish loads the script (EVALSHA, then EVAL on NOSCRIPT).
	if _, err := e.Publish(t.Context(), ch, []byte(`{}`), opts); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	mon := startMonitor(t, r.Addr)
	const n = 50
	for i := range n {
		o := opts
		if i%2 == 1 {
			o.IdempotencyKey = fmt.Sprint("key-", i)
		}
		if _, err := e.Publish(t.Context(), ch, fmt.Appendf(nil, `{"i":%d}`, i), o); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	const marker = "publishes-done"
	if _, err := testkit.RedisCommand(r.Addr, "ECHO", marker); err != nil {
		t.Fatalf("ECHO: %v", err)
	}
	sent := map[string]int{} // commands the engine sent, by name
	for _, c := range mon.until(t, marker) {
		if c.source != "lua" {
			sent[c.name]++
		}
	}
	if sent["EVALSHA"]+sent["FCALL"] != n {
		t.Errorf("%d publishes sent %d EVALSHA and %d FCALL, want %d in all", n, sent["EVALSHA"], sent["FCALL"], n)
	}
	// rueidis opens its connections on demand, so one may start among the
	// publishes: its HELLO is once per connection, not per publish.
	for _, name := range []string{"EVALSHA", "FCALL", "HELLO"} {
		delete(sent, name)
	}
	if len(sent) > 0 {
		t.Errorf("publishes sent other commands too, each a round trip: %v", sent)
	}
}
