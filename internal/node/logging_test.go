package node

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// A user set while another goroutine builds the logger is not lost to a
// logger built for the previous user, and logger never returns nil.
func TestSessionLoggerRacingSetLogUser(t *testing.T) {
	var buf syncBuffer
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
	lines := buf.lines(t)
	if len(lines) != 1 || lines[0]["user"] != "user999" {
		t.Fatalf("lines: %v", lines)
	}
}
