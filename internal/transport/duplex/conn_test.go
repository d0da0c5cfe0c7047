package duplex

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// recordingSocket is a socket that keeps what is written to it.
type recordingSocket struct {
	mu     sync.Mutex
	msgs   []string
	closed *protocol.Disconnect
}

func (r *recordingSocket) WriteText(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(p))
	return nil
}
func (r *recordingSocket) Blocked() bool { return false }
func (r *recordingSocket) CloseWith(d protocol.Disconnect) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = &d
}
func (r *recordingSocket) Abort() {}

func (r *recordingSocket) closeFrame() *protocol.Disconnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func TestWriteItemsCoalesces(t *testing.T) {
	f := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	tests := []struct {
		name   string
		frames []string
		want   []string
	}{
		{"small frames share a message", []string{"a", "b", "c"}, []string{"a\nb\nc"}},
		{"exactly the cap", []string{f('a', 49), f('b', 50)}, []string{f('a', 49) + "\n" + f('b', 50)}},
		{"one byte over the cap", []string{f('a', 50), f('b', 50)}, []string{f('a', 50), f('b', 50)}},
		{"split at the cap", []string{f('a', 40), f('b', 40), f('c', 40)}, []string{f('a', 40) + "\n" + f('b', 40), f('c', 40)}},
		{"a large frame goes alone", []string{"x", f('L', 150), "y"}, []string{"x", f('L', 150), "y"}},
		{"nothing to write", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Conn{host: &Host{maxCoalesced: 100}}
			buf := &flushBuffer{msg: make([]byte, 0, 8)}
			for _, fr := range tt.frames {
				buf.items = append(buf.items, node.Item{Frame: []byte(fr)})
			}
			sock := &recordingSocket{}
			if err := c.writeItems(sock, buf); err != nil {
				t.Fatal(err)
			}
			if strings.Join(sock.msgs, "|") != strings.Join(tt.want, "|") || len(sock.msgs) != len(tt.want) {
				t.Fatalf("messages %q, want %q", sock.msgs, tt.want)
			}
		})
	}
}

func TestWriteItemsDoesNotModifySharedFrames(t *testing.T) {
	// Frames are shared between all subscribers of a channel.
	shared := []byte(`{"type":"publication"}`)
	orig := bytes.Clone(shared)
	c := &Conn{host: &Host{maxCoalesced: 1 << 10}}
	buf := &flushBuffer{items: []node.Item{{Frame: shared[:len(shared):len(shared)]}, {Frame: shared}}}
	if err := c.writeItems(&recordingSocket{}, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, orig) {
		t.Fatalf("shared frame changed to %q", shared)
	}
}

func TestInboxOverflowDisconnects(t *testing.T) {
	n, err := node.New(node.Config{Engine: memory.New(memory.Config{}), Dev: true, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	// A command pool that never runs stands for an engine stuck on every call.
	h, err := New(Config{Node: n})
	if err != nil {
		t.Fatal(err)
	}
	h.commands = eventloop.NewPool(0)
	c, err := h.Open(node.Credentials{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Session().Finish()
	sock := &recordingSocket{}
	c.Attach(sock)

	for i := 0; i <= maxInboxFrames; i++ {
		c.Text([]byte(`{"id":1,"method":"ping"}`))
	}
	testkit.WaitFor(t, 5*time.Second, "the close frame", func() bool { return sock.closeFrame() != nil })
	if d := sock.closeFrame(); d.Code != protocol.DisconnectBadRequest.Code {
		t.Fatalf("closed with %+v", d)
	}
	c.mu.Lock()
	queued := len(c.inbox)
	c.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d frames still queued after the close", queued)
	}
}

// latestSocket is a recordingSocket with an unreliable path.
type latestSocket struct {
	recordingSocket
	open   bool
	latest []string
}

func (l *latestSocket) HasLatestPath() bool { return l.open }
func (l *latestSocket) WriteLatest(p []byte) error {
	l.latest = append(l.latest, string(p))
	return nil
}

func TestLatestPublicationsTakeTheUnreliablePath(t *testing.T) {
	items := []node.Item{
		{Frame: []byte("r1")},
		{Frame: []byte("a1"), Channel: "a", Latest: true},
		{Frame: []byte("b1"), Channel: "b", Latest: true},
		{Frame: []byte("a2"), Channel: "a", Latest: true},
		{Frame: []byte("r2")},
	}
	c := &Conn{host: &Host{maxCoalesced: 1 << 10}}

	sock := &latestSocket{open: true}
	if err := c.writeItems(sock, &flushBuffer{items: items}); err != nil {
		t.Fatal(err)
	}
	// Only the newest of each channel, one per message; the rest coalesced
	// on the reliable path.
	if strings.Join(sock.latest, "|") != "b1|a2" || strings.Join(sock.msgs, "|") != "r1\nr2" {
		t.Fatalf("latest %q, reliable %q", sock.latest, sock.msgs)
	}

	closed := &latestSocket{}
	if err := c.writeItems(closed, &flushBuffer{items: items}); err != nil {
		t.Fatal(err)
	}
	if len(closed.latest) != 0 || strings.Join(closed.msgs, "|") != "r1\na1\nb1\na2\nr2" {
		t.Fatalf("without the path: latest %q, reliable %q", closed.latest, closed.msgs)
	}
}
