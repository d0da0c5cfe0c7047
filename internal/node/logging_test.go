package node

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer that handlers on several goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines decodes every JSON log line written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.b.Bytes()))
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
	var buf syncBuffer
	n := newTestNode(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	p := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "alice"}, Authenticated: true})
	p.s.logger().Info("one")
	p.s.logger().Info("two")
	lines := buf.lines(t)
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
	var buf syncBuffer
	n := newTestNode(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.logger().Info("before")
	p.s.setLogUser("bob") // what connect does with a token's user
	p.s.logger().Info("after")
	lines := buf.lines(t)
	if len(lines) != 2 || lines[0]["user"] != "" || lines[1]["user"] != "bob" {
		t.Fatalf("lines: %v", lines)
	}
}
