package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/testkit"
)

// fakeWS is a scripted WebSocket server: each connection runs script with
// its number (1, 2, …), to make the server do what a real one rarely does.
type fakeWS struct {
	srv   *httptest.Server
	conns atomic.Int32
}

func newFakeWS(t *testing.T, script func(ctx context.Context, n int, c *fakeConn)) *fakeWS {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	f := &fakeWS{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		script(ctx, int(f.conns.Add(1)), &fakeConn{t: t, ws: ws, ctx: ctx})
	}))
	t.Cleanup(func() {
		cancel()
		f.srv.Close()
		wg.Wait()
	})
	return f
}

type fakeConn struct {
	t   *testing.T
	ws  *websocket.Conn
	ctx context.Context
}

type fakeCommand struct {
	ID     uint32          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// read returns the commands of the next message.
func (c *fakeConn) read() ([]fakeCommand, error) {
	_, msg, err := c.ws.Read(c.ctx)
	if err != nil {
		return nil, err
	}
	var cmds []fakeCommand
	for _, line := range bytes.Split(msg, []byte("\n")) {
		var cmd fakeCommand
		if err := json.Unmarshal(line, &cmd); err != nil {
			c.t.Errorf("client sent a malformed frame %q: %v", line, err)
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

func (c *fakeConn) send(frames ...string) {
	msg := []byte(frames[0])
	for _, f := range frames[1:] {
		msg = append(append(msg, '\n'), f...)
	}
	_ = c.ws.Write(c.ctx, websocket.MessageText, msg)
}

// connect answers the client's connect command.
func (c *fakeConn) connect(ping, pong int) bool {
	cmds, err := c.read()
	if err != nil || cmds[0].Method != "connect" {
		return false
	}
	c.send(fmt.Sprintf(`{"id":%d,"result":{"client":"fake","version":"t","ping":%d,"pong":%d}}`, cmds[0].ID, ping, pong))
	return true
}

// drain reads until the client goes away.
func (c *fakeConn) drain() {
	for {
		if _, err := c.read(); err != nil {
			return
		}
	}
}

// Close codes 4500-4999 stop the client; 4000-4499 make it reconnect.
func TestWebSocketCloseCodes(t *testing.T) {
	t.Run("4501 refuses for good", func(t *testing.T) {
		f := newFakeWS(t, func(_ context.Context, _ int, c *fakeConn) {
			if _, err := c.read(); err == nil {
				_ = c.ws.Close(4501, "unauthorized")
			}
		})
		var disconnected atomic.Value
		c := newClient(t, f.srv.URL, client.WebSocket, func(cfg *client.Config) {
			cfg.OnDisconnected = func(e client.DisconnectedEvent) { disconnected.Store(e) }
		})
		err := c.Connect(ctxT(t))
		var de *client.DisconnectError
		if !errors.As(err, &de) || de.Code != 4501 || de.Reason != "unauthorized" {
			t.Fatalf("Connect: %v", err)
		}
		if c.State() != client.StateDisconnected {
			t.Fatalf("state %v", c.State())
		}
		testkit.WaitFor(t, 5*time.Second, "OnDisconnected", func() bool {
			e, ok := disconnected.Load().(client.DisconnectedEvent)
			return ok && e.Code == 4501
		})
		if n := f.conns.Load(); n != 1 {
			t.Fatalf("%d connections after a 4501", n)
		}
		// Connect tries again when asked to.
		if err := c.Connect(ctxT(t)); !errors.As(err, &de) || f.conns.Load() != 2 {
			t.Fatalf("second Connect: %v after %d connections", err, f.conns.Load())
		}
	})
	t.Run("4005 reconnects", func(t *testing.T) {
		f := newFakeWS(t, func(_ context.Context, n int, c *fakeConn) {
			if !c.connect(25, 10) {
				return
			}
			if n == 1 {
				_ = c.ws.Close(4005, "forced reconnect")
				return
			}
			c.drain()
		})
		var connecting atomic.Value
		c := newClient(t, f.srv.URL, client.WebSocket, func(cfg *client.Config) {
			cfg.OnConnecting = func(e client.ConnectingEvent) {
				if e.Code != 0 {
					connecting.Store(e)
				}
			}
		})
		if err := c.Connect(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 5*time.Second, "a second connection", func() bool { return f.conns.Load() == 2 && c.State() == client.StateConnected })
		testkit.WaitFor(t, 5*time.Second, "OnConnecting with the close code", func() bool {
			e, ok := connecting.Load().(client.ConnectingEvent)
			return ok && e.Code == 4005 && e.Reason == "forced reconnect"
		})
	})
	t.Run("handshake refused", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", http.StatusForbidden)
		}))
		defer srv.Close()
		c := newClient(t, srv.URL, client.WebSocket, nil)
		if err := c.Connect(ctxT(t)); err == nil || c.State() != client.StateDisconnected {
			t.Fatalf("Connect: %v, state %v", err, c.State())
		}
	})
}

// The client answers the server's pings, and takes a server that stops
// sending anything for longer than ping + pong as gone.
func TestWebSocketHeartbeat(t *testing.T) {
	t.Run("pong", func(t *testing.T) {
		ponged := make(chan struct{})
		f := newFakeWS(t, func(_ context.Context, _ int, c *fakeConn) {
			if !c.connect(25, 10) {
				return
			}
			c.send(`{"type":"ping"}`)
			cmds, err := c.read()
			if err == nil && cmds[0].Method == "pong" && cmds[0].ID == 0 {
				close(ponged)
			}
			c.drain()
		})
		c := newClient(t, f.srv.URL, client.WebSocket, nil)
		if err := c.Connect(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ponged:
		case <-time.After(10 * time.Second):
			t.Fatal("no pong")
		}
	})
	t.Run("silent server", func(t *testing.T) {
		f := newFakeWS(t, func(ctx context.Context, _ int, c *fakeConn) {
			if c.connect(1, 1) {
				c.drain() // says nothing more, not even pings
			}
		})
		c := newClient(t, f.srv.URL, client.WebSocket, nil)
		if err := c.Connect(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "a reconnect after 2s of silence", func() bool { return f.conns.Load() >= 2 })
	})
}

// Frames arrive batched in one message; the client's resubscribes go out
// batched too, and a gap in offsets makes it resume from the last offset
// it delivered.
func TestWebSocketBatchingAndGap(t *testing.T) {
	second := make(chan []fakeCommand, 1)
	f := newFakeWS(t, func(_ context.Context, n int, c *fakeConn) {
		if !c.connect(25, 10) {
			return
		}
		cmds, err := c.read()
		if err != nil {
			return
		}
		if n == 2 {
			second <- cmds
			c.drain()
			return
		}
		var frames []string
		for _, cmd := range cmds {
			frames = append(frames, fmt.Sprintf(`{"id":%d,"result":{"epoch":"E","offset":0,"recoverable":true}}`, cmd.ID))
		}
		// Offsets 1 and 2 of gap:a, then 4: offset 3 is missing.
		frames = append(frames,
			`{"type":"publication","channel":"gap:a","offset":1,"data":1,"time":1}`,
			`{"type":"publication","channel":"gap:a","offset":2,"data":2,"time":2}`,
			`{"type":"publication","channel":"gap:a","offset":2,"data":2,"time":2}`,
			`{"type":"publication","channel":"gap:a","offset":4,"data":4,"time":4}`)
		c.send(frames...)
		c.drain()
	})
	c := newClient(t, f.srv.URL, client.WebSocket, nil)
	var rec recorder
	for _, ch := range []string{"gap:a", "gap:b", "gap:c"} {
		cfg := client.SubscriptionConfig{}
		if ch == "gap:a" {
			cfg = rec.config()
		}
		sub, err := c.NewSubscription(ch, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = sub.Subscribe(context.Background()) // before Connect: recorded only
	}
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var cmds []fakeCommand
	select {
	case cmds = <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect after a gap")
	}
	if len(cmds) != 3 {
		t.Fatalf("resubscribe sent %d commands in its message, want 3 batched", len(cmds))
	}
	for _, cmd := range cmds {
		var p struct {
			Channel string `json:"channel"`
			Recover bool   `json:"recover"`
			Epoch   string `json:"epoch"`
			Offset  uint64 `json:"offset"`
		}
		_ = json.Unmarshal(cmd.Params, &p)
		want := uint64(0)
		if p.Channel == "gap:a" {
			want = 2
		}
		if cmd.Method != "subscribe" || !p.Recover || p.Epoch != "E" || p.Offset != want {
			t.Fatalf("resubscribe %s %s", cmd.Method, cmd.Params)
		}
	}
	pubs := rec.waitPubs(t, 2)
	if len(pubs) != 2 || pubs[0].Offset != 1 || pubs[1].Offset != 2 {
		t.Fatalf("delivered %+v", pubs)
	}
}

// connectDataBackend authenticates every client as "alice" and answers its
// connect data back inside its own, counting the calls it got.
func connectDataBackend(t *testing.T, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Data json.RawMessage `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"user": "alice", "data": map[string]any{"echo": req.Data}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestConnectDataThroughBackend(t *testing.T) {
	var calls atomic.Int32
	backend := connectDataBackend(t, &calls)
	srv := startServer(t, func(cfg *server.Config) { cfg.Proxy.ConnectURL = backend.URL })
	ctx := ctxT(t)
	connected := make(chan client.ConnectedEvent, 4)
	c := newClient(t, srv.URL(), client.WebSocket, func(cfg *client.Config) {
		cfg.Data = json.RawMessage(`{ "room": "lobby" }`)
		cfg.OnConnected = func(e client.ConnectedEvent) { connected <- e }
	})
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Reconnections send the data again and report the new answer.
	for i := range 2 {
		select {
		case e := <-connected:
			if e.User != "alice" || string(e.Data) != `{"echo":{"room":"lobby"}}` {
				t.Errorf("connection %d: user %q, data %s", i, e.User, e.Data)
			}
		case <-ctx.Done():
			t.Fatalf("connection %d not reported", i)
		}
		if i == 0 {
			srv.restart("")
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("backend asked %d times, want 2", n)
	}
}

func TestConnectDataMustBeJSON(t *testing.T) {
	for _, data := range []string{"{", "", "1 2"} {
		_, err := client.New(client.Config{URL: "http://127.0.0.1:1", Data: json.RawMessage(data)})
		if err == nil {
			t.Errorf("Data %q accepted", data)
		}
	}
}
