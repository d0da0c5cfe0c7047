package websocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestMain(m *testing.M) {
	// nbio logs engine starts and stops to stdout through a process-wide
	// logger; keep test output readable.
	logging.SetLevel(logging.LevelNone)
	// nbio's websocket package builds a default engine when it is
	// initialised, whose two task pools each keep a goroutine for the life of
	// the process. They exist before any test runs; everything started
	// after this point must be gone at the end.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// harness is a node, the WebSocket transport mounted at /ws on a real HTTP
// server on 127.0.0.1, and an HTTP client to dial it. Everything is shut
// down when the test ends, in the order a server does it.
type harness struct {
	t      *testing.T
	node   *node.Node
	ws     *Server
	srv    *httptest.Server
	url    string
	client *http.Client
}

type harnessOptions struct {
	node node.Config
	ws   Config
	tls  bool
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.node.Engine == nil {
		o.node.Engine = memory.New(memory.Config{})
	}
	o.node.Dev = true
	o.node.AllowAnonymous = true
	n, err := node.New(o.node)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	o.ws.Node = n
	ws, err := New(o.ws)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Start(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", ws)
	srv := httptest.NewUnstartedServer(mux)
	tr := &http.Transport{}
	scheme := "ws://"
	if o.tls {
		srv.StartTLS()
		tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
		scheme = "wss://"
	} else {
		srv.Start()
	}
	h := &harness{
		t:      t,
		node:   n,
		ws:     ws,
		srv:    srv,
		url:    scheme + strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://") + "/ws",
		client: &http.Client{Transport: tr},
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		if err := ws.Shutdown(ctx); err != nil {
			t.Errorf("websocket shutdown: %v", err)
		}
		srv.Close()
		tr.CloseIdleConnections()
	})
	return h
}

// frame is any server frame: a reply (ID set) or a push (Type set).
type frame struct {
	ID      uint32          `json:"id"`
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
	Result  json.RawMessage `json:"result"`
	Error   *protocol.Error `json:"error"`
}

// wsClient is a test client on coder/websocket: an implementation
// independent of the server's.
type wsClient struct {
	t       *testing.T
	c       *cws.Conn
	pending [][]byte // frames of the last message not yet returned
	nextID  uint32
	// messages counts WebSocket messages received, frames the frames in them.
	messages, frames int
}

func (h *harness) dial(ctx context.Context) *wsClient {
	h.t.Helper()
	c, err := h.tryDial(ctx)
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	return c
}

func (h *harness) tryDial(ctx context.Context) (*wsClient, error) {
	return h.dialWith(ctx, h.client)
}

func (h *harness) dialWith(ctx context.Context, hc *http.Client) (*wsClient, error) {
	c, resp, err := cws.Dial(ctx, h.url, &cws.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(-1)
	w := &wsClient{t: h.t, c: c}
	h.t.Cleanup(func() { _ = c.CloseNow() })
	return w, nil
}

// send writes one command and returns its id.
func (w *wsClient) send(ctx context.Context, method string, params any) uint32 {
	w.t.Helper()
	w.nextID++
	cmd := map[string]any{"id": w.nextID, "method": method}
	if params != nil {
		cmd["params"] = params
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		w.t.Fatal(err)
	}
	w.writeRaw(ctx, b)
	return w.nextID
}

func (w *wsClient) writeRaw(ctx context.Context, b []byte) {
	w.t.Helper()
	if err := w.c.Write(ctx, cws.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, splitting messages that carry several.
func (w *wsClient) read(ctx context.Context) (frame, error) {
	for len(w.pending) == 0 {
		typ, msg, err := w.c.Read(ctx)
		if err != nil {
			return frame{}, err
		}
		if typ != cws.MessageText {
			return frame{}, fmt.Errorf("got a %v message", typ)
		}
		w.messages++
		w.pending = bytes.Split(msg, []byte("\n"))
		w.frames += len(w.pending)
	}
	raw := w.pending[0]
	w.pending = w.pending[1:]
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", raw, err)
	}
	if f.Type == protocol.PushJoin || f.Type == protocol.PushLeave {
		// Dev namespaces announce presence; no test here is about it.
		return w.read(ctx)
	}
	return f, nil
}

func (w *wsClient) mustRead(ctx context.Context) frame {
	w.t.Helper()
	f, err := w.read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return f
}

// reply reads up to the reply to id, failing on any push before it unless
// skipPushes is set.
func (w *wsClient) reply(ctx context.Context, id uint32, skipPushes bool) frame {
	w.t.Helper()
	for {
		f := w.mustRead(ctx)
		if f.ID == id && f.Type == "" {
			return f
		}
		if !skipPushes {
			w.t.Fatalf("waiting for reply %d, got %+v", id, f)
		}
	}
}

// call sends a command and decodes the result of its reply into res, failing
// on an error reply.
func (w *wsClient) call(ctx context.Context, method string, params, res any) {
	w.t.Helper()
	r := w.reply(ctx, w.send(ctx, method, params), false)
	if r.Error != nil {
		w.t.Fatalf("%s: error reply %+v", method, r.Error)
	}
	if res != nil {
		if err := json.Unmarshal(r.Result, res); err != nil {
			w.t.Fatalf("%s result %s: %v", method, r.Result, err)
		}
	}
}

func (w *wsClient) connect(ctx context.Context) protocol.ConnectResult {
	w.t.Helper()
	var res protocol.ConnectResult
	w.call(ctx, protocol.MethodConnect, nil, &res)
	return res
}

func (w *wsClient) subscribe(ctx context.Context, req protocol.SubscribeRequest) protocol.SubscribeResult {
	w.t.Helper()
	var res protocol.SubscribeResult
	w.call(ctx, protocol.MethodSubscribe, req, &res)
	return res
}

// expectClose reads until the connection ends and checks its close code.
func (w *wsClient) expectClose(ctx context.Context, code protocol.Disconnect) {
	w.t.Helper()
	for {
		_, err := w.read(ctx)
		if err == nil {
			continue
		}
		if got := cws.CloseStatus(err); got != cws.StatusCode(code.Code) {
			w.t.Fatalf("connection ended with %v (close status %d), want close %d %q", err, got, code.Code, code.Reason)
		}
		return
	}
}

// expectPublications reads frames until it has seen the publications of
// channel with offsets from..to, in order, failing on anything else.
func (w *wsClient) expectPublications(ctx context.Context, channel string, from, to uint64) {
	w.t.Helper()
	for want := from; want <= to; want++ {
		f := w.mustRead(ctx)
		if f.Type != protocol.PushPublication || f.Channel != channel || f.Offset != want {
			w.t.Fatalf("want publication %s@%d, got %+v", channel, want, f)
		}
	}
}

func publish(t *testing.T, n *node.Node, channel string, data string) protocol.PublishResult {
	t.Helper()
	res, err := n.Publish(context.Background(), protocol.PublishRequest{Channel: channel, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
