package node

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/testkit"
)

// logLines decodes every JSON log line written to buf so far.
func logLines(t *testing.T, buf *testkit.LockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(strings.NewReader(buf.String()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestSessionLogLinesCarryClientAndUser(t *testing.T) {
	var buf testkit.LockedBuffer
	n := newTestNode(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	p := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "alice"}, Authenticated: true})
	p.s.logger().Info("one")
	p.s.logger().Info("two")
	lines := logLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	for _, l := range lines {
		if l["client"] != p.s.ID() || l["user"] != "alice" || l["transport"] != "test" {
			t.Fatalf("line %v lacks client %s, user alice and transport test", l, p.s.ID())
		}
	}
	first := p.s.logger()
	if again := p.s.logger(); again != first {
		t.Fatal("the session logger is rebuilt per line")
	}
}

func TestSessionLoggerFollowsTheConnectingUser(t *testing.T) {
	var buf testkit.LockedBuffer
	n := newTestNode(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.logger().Info("before")
	p.s.setLogUser("bob") // what connect does with a token's user
	p.s.logger().Info("after")
	lines := logLines(t, &buf)
	if len(lines) != 2 || lines[0]["user"] != "" || lines[1]["user"] != "bob" {
		t.Fatalf("lines: %v", lines)
	}
}

// A user set while another goroutine builds the logger is not lost to a
// logger built for the previous user, and logger never returns nil.
func TestSessionLoggerRacingSetLogUser(t *testing.T) {
	var buf testkit.LockedBuffer
	n := newTestNode(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if p.s.logger() == nil {
					t.Error("logger returned nil")
					return
				}
			}
		}
	})
	for i := range 1000 {
		p.s.setLogUser(fmt.Sprint("user", i))
	}
	close(stop)
	wg.Wait()
	p.s.logger().Info("last")
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0]["user"] != "user999" {
		t.Fatalf("lines: %v", lines)
	}
}
