package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
	"github.com/heraldrt/herald/internal/transport/sse"
)

const waitTimeout = 10 * time.Second

// env is one test's node, SSE server and HTTP client.
type env struct {
	t   *testing.T
	n   *node.Node
	srv *httptest.Server
	hc  *http.Client
}

// setup starts a node on the memory engine and an SSE server in front of it.
// wrap, when not nil, wraps the server's listener. Cleanup shuts everything
// down and then checks that no goroutine is left behind.
func setup(t *testing.T, ncfg node.Config, scfg sse.Config, wrap func(net.Listener) net.Listener) *env {
	t.Helper()
	return setupServer(t, ncfg, scfg, wrap, false)
}

// setupServer is setup with a choice of TLS, under which streams stay on
// their handler goroutines.
func setupServer(t *testing.T, ncfg node.Config, scfg sse.Config, wrap func(net.Listener) net.Listener, useTLS bool) *env {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ncfg.Engine = memory.New(memory.Config{})
	ncfg.Dev = true
	ncfg.AllowAnonymous = true
	n, err := node.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	scfg.Node = n
	// A started handler moves plain HTTP/1.1 streams to its event loop, as
	// the server runs it; TestStreamOnHandlerGoroutine covers the other mode.
	h := sse.New(scfg)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	hc := &http.Client{Transport: &http.Transport{}}
	if useTLS {
		srv.StartTLS()
		hc = srv.Client()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("sse shutdown: %v", err)
		}
		srv.Close()
		hc.CloseIdleConnections()
	})
	return &env{t: t, n: n, srv: srv, hc: hc}
}

func (e *env) url(query string) string { return e.srv.URL + "/sse?" + query }

// publish publishes data on channel and returns its offset.
func (e *env) publish(channel, data string, ephemeral bool) uint64 {
	e.t.Helper()
	res, err := e.n.Publish(context.Background(), protocol.PublishRequest{Channel: channel, Data: json.RawMessage(data), Ephemeral: ephemeral})
	if err != nil {
		e.t.Fatalf("publish to %s: %v", channel, err)
	}
	return res.Offset
}

// event is one block of the stream, up to a blank line.
type event struct {
	Name    string
	ID      string
	HasID   bool
	Data    string
	Retry   string
	Comment string
}

// client reads one SSE response with its own line parser. Its reader
// goroutine hands over one event at a time, so a test that stops receiving
// makes the client stop reading the connection.
type client struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan event
	stop   chan struct{}
	done   chan struct{}
}

// dial opens a stream and fails the test unless it starts with status 200.
func (e *env) dial(query string, header http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url(query), nil)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			e.t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	c := &client{t: e.t, resp: resp, cancel: cancel, events: make(chan event), stop: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	e.t.Cleanup(c.close)
	return c
}

func (c *client) read() {
	defer close(c.done)
	defer close(c.events)
	br := bufio.NewReader(c.resp.Body)
	var ev event
	empty := true
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !empty {
				select {
				case c.events <- ev:
				case <-c.stop:
					return
				}
			}
			ev, empty = event{}, true
			continue
		}
		empty = false
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.Comment = value
		case "event":
			ev.Name = value
		case "id":
			ev.ID, ev.HasID = value, true
		case "data":
			if ev.Data != "" {
				ev.Data += "\n"
			}
			ev.Data += value
		case "retry":
			ev.Retry = value
		default:
			c.t.Errorf("unknown SSE field in %q", line)
		}
	}
}

// close ends the stream from the client side; later calls do nothing.
func (c *client) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// raw returns the next block, whatever it is; ok is false once the stream ended.
func (c *client) raw() (ev event, ok bool) {
	c.t.Helper()
	select {
	case ev, ok = <-c.events:
		return ev, ok
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for an SSE event")
		return event{}, false
	}
}

// next returns the next event other than comments, the retry hint and
// presence events (dev namespaces send join and leave).
func (c *client) next() event {
	c.t.Helper()
	for {
		ev, ok := c.raw()
		if !ok {
			c.t.Fatal("stream ended")
		}
		if ev.Comment != "" || ev.Retry != "" || ev.Name == protocol.PushJoin || ev.Name == protocol.PushLeave {
			continue
		}
		return ev
	}
}

type subscribed struct {
	Type          string `json:"type"`
	Channel       string `json:"channel"`
	Epoch         string `json:"epoch"`
	Offset        uint64 `json:"offset"`
	Recoverable   bool   `json:"recoverable"`
	WasRecovering bool   `json:"was_recovering"`
	Recovered     bool   `json:"recovered"`
}

type publication struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
}

// nextSubscribed expects a subscribed event for channel.
func (c *client) nextSubscribed(channel string) subscribed {
	c.t.Helper()
	ev := c.next()
	var s subscribed
	if ev.Name != "subscribed" || !ev.HasID || json.Unmarshal([]byte(ev.Data), &s) != nil || s.Type != "subscribed" || s.Channel != channel {
		c.t.Fatalf("want subscribed event with id for %s, got %+v", channel, ev)
	}
	return s
}

// nextPublication expects a publication event; withID says whether it must
// carry an id (stored) or not (ephemeral).
func (c *client) nextPublication(withID bool) (publication, event) {
	c.t.Helper()
	ev := c.next()
	var p publication
	if ev.Name != "" || ev.HasID != withID || json.Unmarshal([]byte(ev.Data), &p) != nil || p.Type != "publication" {
		c.t.Fatalf("want publication event (id: %v), got %+v", withID, ev)
	}
	return p, ev
}

// positions parses an event id of a two-channel stream.
func positions(t *testing.T, id string) []protocol.StreamPosition {
	t.Helper()
	ps, err := protocol.ParsePositions(id, 2)
	if err != nil {
		t.Fatalf("event id %q: %v", id, err)
	}
	return ps
}

// expectPublication expects the stored publication (channel, offset, data)
// and checks that the event's id has that channel's position (index i of
// the stream) at its offset.
func (c *client) expectPublication(i int, channel string, offset uint64, data string) event {
	c.t.Helper()
	p, ev := c.nextPublication(true)
	if p.Channel != channel || p.Offset != offset || string(p.Data) != data {
		c.t.Fatalf("want %s@%d %s, got %s@%d %s", channel, offset, data, p.Channel, p.Offset, p.Data)
	}
	if got := positions(c.t, ev.ID)[i].Offset; got != offset {
		c.t.Fatalf("id %q: position of %s is %d, want %d", ev.ID, channel, got, offset)
	}
	return ev
}

func TestStreamAndResume(t *testing.T) {
	e := setup(t, node.Config{}, sse.Config{}, nil)
	e.publish("chat:a", `{"n":"a1"}`, false)
	e.publish("chat:b", `{"n":"b1"}`, false)

	// Channels named out of order: the stream uses the canonical order.
	c := e.dial("channel=chat:b&channel=chat:a", nil)
	if ev, _ := c.raw(); ev.Retry != "2000" {
		t.Fatalf("first block %+v, want retry: 2000", ev)
	}
	sa := c.nextSubscribed("chat:a")
	sb := c.nextSubscribed("chat:b")
	if sa.Offset != 1 || sb.Offset != 1 || sa.WasRecovering || sa.Recovered || !sa.Recoverable {
		t.Fatalf("subscribed: %+v %+v", sa, sb)
	}

	e.publish("chat:a", `{"n":"a2"}`, false)
	e.publish("chat:b", `{"n":"b2"}`, false)
	e.publish("chat:a", `{"n":"a3"}`, false)
	e.publish("chat:b", `{"n":"b3"}`, false)
	// Channels are delivered independently, so only per-channel order holds.
	got := map[string][]uint64{}
	var last event
	for range 4 {
		p, ev := c.nextPublication(true)
		ps := positions(t, ev.ID)
		i := map[string]int{"chat:a": 0, "chat:b": 1}[p.Channel]
		if ps[i].Offset != p.Offset || string(p.Data) != fmt.Sprintf(`{"n":"%c%d"}`, p.Channel[5], p.Offset) {
			t.Fatalf("publication %+v with id %q", p, ev.ID)
		}
		if ps[0].Epoch != sa.Epoch || ps[1].Epoch != sb.Epoch {
			t.Fatalf("id %q: epochs differ from subscribed %s, %s", ev.ID, sa.Epoch, sb.Epoch)
		}
		got[p.Channel] = append(got[p.Channel], p.Offset)
		last = ev
	}
	if fmt.Sprint(got["chat:a"], got["chat:b"]) != "[2 3] [2 3]" {
		t.Fatalf("offsets per channel: %v", got)
	}
	if last.ID != protocol.FormatPositions([]protocol.StreamPosition{{Epoch: sa.Epoch, Offset: 3}, {Epoch: sb.Epoch, Offset: 3}}) {
		t.Fatalf("last id %q", last.ID)
	}

	// An ephemeral publication moves no position: no id.
	e.publish("chat:a", `{"typing":true}`, true)
	if p, _ := c.nextPublication(false); p.Offset != 0 || string(p.Data) != `{"typing":true}` {
		t.Fatalf("ephemeral: %+v", p)
	}

	c.close()
	testkit.WaitFor(t, waitTimeout, "the session to finish", func() bool { return e.n.Info().NumClients == 0 })
	e.publish("chat:a", `{"n":"a4"}`, false)
	e.publish("chat:a", `{"n":"a5"}`, false)
	e.publish("chat:b", `{"n":"b4"}`, false)
	e.publish("chat:b", `{"n":"b5"}`, false)

	// What EventSource does on reconnect: same URL, Last-Event-ID header.
	c = e.dial("channel=chat:b&channel=chat:a", http.Header{"Last-Event-ID": {last.ID}})
	sa = c.nextSubscribed("chat:a")
	if !sa.WasRecovering || !sa.Recovered || sa.Offset != 5 {
		t.Fatalf("resubscribed: %+v", sa)
	}
	c.expectPublication(0, "chat:a", 4, `{"n":"a4"}`)
	c.expectPublication(0, "chat:a", 5, `{"n":"a5"}`)
	sb = c.nextSubscribed("chat:b")
	if !sb.WasRecovering || !sb.Recovered || sb.Offset != 5 {
		t.Fatalf("resubscribed: %+v", sb)
	}
	c.expectPublication(1, "chat:b", 4, `{"n":"b4"}`)
	c.expectPublication(1, "chat:b", 5, `{"n":"b5"}`)
	// Live ones follow directly: nothing was repeated in between.
	e.publish("chat:a", `{"n":"a6"}`, false)
	c.expectPublication(0, "chat:a", 6, `{"n":"a6"}`)
	e.publish("chat:b", `{"n":"b6"}`, false)
	ev := c.expectPublication(1, "chat:b", 6, `{"n":"b6"}`)
	if ps := positions(t, ev.ID); ps[0].Offset != 6 {
		t.Fatalf("id %q after a6 and b6", ev.ID)
	}
}

func TestResumeFromAnotherEpoch(t *testing.T) {
	e := setup(t, node.Config{}, sse.Config{}, nil)
	e.publish("chat:a", `1`, false)
	e.publish("chat:b", `1`, false)

	check := func(c *client) {
		t.Helper()
		sa := c.nextSubscribed("chat:a")
		sb := c.nextSubscribed("chat:b")
		for _, s := range []subscribed{sa, sb} {
			if !s.WasRecovering || s.Recovered {
				t.Fatalf("want an explicit failed recovery, got %+v", s)
			}
		}
		e.publish("chat:b", `2`, false)
		ev := c.expectPublication(1, "chat:b", 2, `2`)
		// From here on the ids name the current epochs.
		want := protocol.FormatPositions([]protocol.StreamPosition{{Epoch: sa.Epoch, Offset: 1}, {Epoch: sb.Epoch, Offset: 2}})
		if ev.ID != want {
			t.Fatalf("id %q, want %q", ev.ID, want)
		}
		c.close()
	}
	// A first connect that resumes uses the query parameter...
	check(e.dial("channel=chat:a&channel=chat:b&last_event_id=old1-7.old2-9", nil))
	testkit.WaitFor(t, waitTimeout, "the session to finish", func() bool { return e.n.Info().NumClients == 0 })
	e.publish("chat:a", `2`, false)
	// ...and the header, sent by EventSource on reconnect, wins over it.
	c := e.dial("channel=chat:a&channel=chat:b&last_event_id=malformed", http.Header{"Last-Event-ID": {"old1-7.old2-9"}})
	ev := c.next()
	var sa subscribed
	if ev.Name != "subscribed" || json.Unmarshal([]byte(ev.Data), &sa) != nil || sa.Channel != "chat:a" || sa.Recovered || sa.Offset != 2 {
		t.Fatalf("want unrecovered subscribed event for chat:a, got %+v", ev)
	}
	// Until chat:b's own subscribed event, the id keeps the client's position
	// for it, so a reconnect in between is told again that it was not
	// recovered.
	ps := positions(t, ev.ID)
	if ps[0] != (protocol.StreamPosition{Epoch: sa.Epoch, Offset: 2}) || ps[1] != (protocol.StreamPosition{Epoch: "old2", Offset: 9}) {
		t.Fatalf("id %q of the first subscribed event", ev.ID)
	}
	if sb := c.nextSubscribed("chat:b"); sb.Recovered || sb.Offset != 2 {
		t.Fatalf("subscribed: %+v", sb)
	}
}

// errorResponse does a request and decodes its JSON error body.
func (e *env) errorResponse(method, query string, header http.Header) (int, uint32) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(query), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header = header
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q", method, query, ct)
	}
	var body struct {
		Error protocol.Error `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("%s %s: %v", method, query, err)
	}
	return resp.StatusCode, body.Error.Code
}

func TestRequestErrors(t *testing.T) {
	e := setup(t, node.Config{MaxChannelsPerSession: 2}, sse.Config{}, nil)
	for _, tc := range []struct {
		name, method, query string
		header              http.Header
		status              int
		code                uint32
	}{
		{"malformed Last-Event-ID", "GET", "channel=a", http.Header{"Last-Event-Id": {"not a position"}}, 400, protocol.ErrInvalidPosition.Code},
		{"Last-Event-ID for other channels", "GET", "channel=a&channel=b", http.Header{"Last-Event-Id": {"e1-1"}}, 400, protocol.ErrInvalidPosition.Code},
		{"malformed last_event_id", "GET", "channel=a&last_event_id=e1-01", nil, 400, protocol.ErrInvalidPosition.Code},
		{"invalid channel", "GET", "channel=" + url.QueryEscape("no spaces"), nil, 400, protocol.ErrInvalidChannel.Code},
		{"no channel", "GET", "", nil, 400, protocol.ErrBadRequest.Code},
		{"too many channels", "GET", "channel=a&channel=b&channel=c", nil, 422, protocol.ErrLimitExceeded.Code},
		{"POST", "POST", "channel=a", nil, 405, protocol.ErrBadRequest.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := e.errorResponse(tc.method, tc.query, tc.header)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d code %d, want %d code %d", status, code, tc.status, tc.code)
			}
		})
	}
	if n := e.n.Info().NumClients; n != 0 {
		t.Fatalf("%d sessions left by failed requests", n)
	}
}

func TestKeepAlive(t *testing.T) {
	e := setup(t, node.Config{}, sse.Config{KeepAlive: 20 * time.Millisecond, Retry: 1500 * time.Millisecond}, nil)
	c := e.dial("channel=a", nil)
	if ev, _ := c.raw(); ev.Retry != "1500" {
		t.Fatalf("first block %+v, want retry: 1500", ev)
	}
	c.nextSubscribed("a")
	for {
		ev, ok := c.raw()
		if !ok {
			t.Fatal("stream ended")
		}
		if ev.Comment == "keepalive" {
			break
		}
	}
}

func TestShutdownDisconnects(t *testing.T) {
	e := setup(t, node.Config{}, sse.Config{}, nil)
	c := e.dial("channel=a", nil)
	c.nextSubscribed("a")

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		shutdown <- e.n.Shutdown(ctx)
	}()
	ev := c.next()
	var d protocol.DisconnectPush
	if ev.Name != "disconnect" || ev.HasID || json.Unmarshal([]byte(ev.Data), &d) != nil {
		t.Fatalf("want disconnect event, got %+v", ev)
	}
	if d.Type != "disconnect" || d.Disconnect != protocol.DisconnectShutdown {
		t.Fatalf("disconnect %+v", d)
	}
	for {
		ev, ok := c.raw()
		if !ok {
			break
		}
		if ev.Comment == "" && ev.Name != protocol.PushLeave {
			t.Fatalf("event after disconnect: %+v", ev)
		}
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// A new stream on the draining node is told to reconnect, not refused
	// with an HTTP error that would stop EventSource for good.
	late := e.dial("channel=a", nil)
	ev = late.next()
	if ev.Name != "disconnect" || json.Unmarshal([]byte(ev.Data), &d) != nil || d.Disconnect != protocol.DisconnectShutdown {
		t.Fatalf("connect while draining: %+v", ev)
	}
}

// smallSendBuffers shrinks the kernel send buffer of accepted connections, so
// a client that stops reading blocks the server's writes after kilobytes
// rather than megabytes.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

func TestSlowConsumer(t *testing.T) {
	e := setup(t,
		node.Config{MaxQueueBytes: 64 << 10},
		sse.Config{WriteTimeout: time.Second},
		func(l net.Listener) net.Listener { return smallSendBuffers{l} })
	healthy := e.dial("channel=slow", nil)
	healthy.nextSubscribed("slow")
	stalled := e.dial("channel=slow", nil)
	stalled.nextSubscribed("slow")
	// From here on the test never receives from stalled, so its reader stops
	// reading the connection.

	// Kernel buffers absorb a varying amount before the stalled stream's
	// writes block and its queue overflows, so publish until it is gone.
	data := `"` + strings.Repeat("x", 8<<10) + `"`
	deadline := time.Now().Add(waitTimeout)
	for e.n.Info().NumClients != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled session was never ended")
		}
		off := e.publish("slow", data, false)
		// Pace the publisher on the healthy client, which must see every one.
		if p, _ := healthy.nextPublication(true); p.Offset != off {
			t.Fatalf("healthy client got offset %d, want %d", p.Offset, off)
		}
	}
	// The stalled stream ends: whatever was buffered, then EOF.
	for {
		if _, ok := stalled.raw(); !ok {
			break
		}
	}
	// The other subscriber is unaffected.
	off := e.publish("slow", `"after"`, false)
	if p, _ := healthy.nextPublication(true); p.Offset != off || string(p.Data) != `"after"` {
		t.Fatalf("healthy client after the slow one ended: %+v", p)
	}
	healthy.close()
	testkit.WaitFor(t, waitTimeout, "no session left", func() bool { return e.n.Info().NumClients == 0 && len(e.n.Channels()) == 0 })
}

// A session closed while SubscribeStream runs must still get a stream with a
// disconnect event: an HTTP error would make EventSource stop reconnecting.
// A resume whose backlog is several times the session's queue recovers it
// in full, page by page as the client reads, with every event id still
// naming both channels; the stream then goes on live. The connection's
// buffers are small, so on the event loop the stream must hold back while
// MaxBufferedBytes wait unsent rather than pass pages on as fast as history
// yields them.
func TestResumeLargerThanQueue(t *testing.T) {
	for _, onHandler := range []bool{true, false} {
		t.Run(map[bool]string{true: "handler goroutine", false: "event loop"}[onHandler], func(t *testing.T) {
			resumeLargerThanQueue(t, onHandler)
		})
	}
}

func resumeLargerThanQueue(t *testing.T, onHandler bool) {
	e := setupServer(t,
		node.Config{MaxQueueBytes: 64 << 10},
		sse.Config{MaxBufferedBytes: 16 << 10},
		func(l net.Listener) net.Listener { return smallSendBuffers{l} },
		onHandler)
	e.publish("r:a", `1`, false)
	e.publish("r:b", `1`, false)
	c := e.dial("channel=r:a&channel=r:b", nil)
	sa := c.nextSubscribed("r:a")
	sb := c.nextSubscribed("r:b")
	c.close()
	data := `"` + strings.Repeat("x", 8<<10) + `"`
	const missed = 40
	for range missed {
		e.publish("r:a", data, false)
	}

	last := protocol.FormatPositions([]protocol.StreamPosition{{Epoch: sa.Epoch, Offset: 1}, {Epoch: sb.Epoch, Offset: 1}})
	c = e.dial("channel=r:a&channel=r:b", http.Header{"Last-Event-ID": {last}})
	if s := c.nextSubscribed("r:a"); !s.Recovered || !s.WasRecovering || s.Offset != 1+missed {
		t.Fatalf("r:a resumed with %+v, want recovered, the channel at offset %d", s, 1+missed)
	}
	// r:b's subscribed event comes once its subscribe ran, between pages.
	next, sawB := uint64(2), false
	for next <= 1+missed || !sawB {
		ev := c.next()
		if ev.Name == "subscribed" {
			var s subscribed
			if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.Channel != "r:b" || !s.Recovered || sawB {
				t.Fatalf("unexpected %+v", ev)
			}
			sawB = true
			continue
		}
		var p publication
		if err := json.Unmarshal([]byte(ev.Data), &p); err != nil || p.Channel != "r:a" || p.Offset != next || string(p.Data) != data {
			t.Fatalf("want r:a@%d, got %+v", next, ev)
		}
		if got := positions(t, ev.ID)[0].Offset; got != next {
			t.Fatalf("id %q names r:a at %d, want %d", ev.ID, got, next)
		}
		next++
	}
	e.publish("r:a", `"live"`, false)
	c.expectPublication(0, "r:a", 2+missed, `"live"`)
}

// handlerGoroutines counts goroutines still inside the SSE handler.
func handlerGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "sse.(*Handler).ServeHTTP")
}

// Plain HTTP/1.1 streams live on the event loop: once established, none of
// them holds a handler goroutine.
func TestStreamsOnEventLoopHoldNoGoroutine(t *testing.T) {
	e := setup(t, node.Config{}, sse.Config{}, nil)
	var clients []*client
	for i := range 50 {
		c := e.dial(fmt.Sprintf("channel=loop:%d", i%5), nil)
		c.nextSubscribed(fmt.Sprintf("loop:%d", i%5))
		clients = append(clients, c)
	}
	// A handler hands its stream to the loop before it returns, so the
	// last ones may still be on their way out when their clients read.
	deadline := time.Now().Add(waitTimeout)
	for n := handlerGoroutines(); n != 0; n = handlerGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d handler goroutines for 50 established streams, want 0", n)
		}
		time.Sleep(time.Millisecond)
	}
	off := e.publish("loop:3", `"x"`, false)
	for i, c := range clients {
		if i%5 == 3 {
			expectOne(t, c, "loop:3", off, `"x"`)
		}
	}
}

// Over TLS a stream keeps its handler goroutine, and behaves the same:
// resume from Last-Event-ID with nothing lost or repeated.
func TestStreamOnHandlerGoroutine(t *testing.T) {
	e := setupServer(t, node.Config{}, sse.Config{}, nil, true)
	c := e.dial("channel=tls", nil)
	c.nextSubscribed("tls")
	var last event
	for i := range 3 {
		last = expectOne(t, c, "tls", e.publish("tls", fmt.Sprint(i), false), fmt.Sprint(i))
	}
	if n := handlerGoroutines(); n != 1 {
		t.Fatalf("%d handler goroutines for one TLS stream, want 1", n)
	}
	c.close()
	e.publish("tls", "3", false)
	e.publish("tls", "4", false)
	c = e.dial("channel=tls", http.Header{"Last-Event-ID": {last.ID}})
	if s := c.nextSubscribed("tls"); !s.Recovered {
		t.Fatalf("resume over TLS: %+v", s)
	}
	expectOne(t, c, "tls", 4, "3")
	expectOne(t, c, "tls", 5, "4")
}

// expectOne expects a stored publication on a one-channel stream, whose id
// is that channel's position.
func expectOne(t *testing.T, c *client, channel string, offset uint64, data string) event {
	t.Helper()
	p, ev := c.nextPublication(true)
	if p.Channel != channel || p.Offset != offset || string(p.Data) != data {
		t.Fatalf("want %s@%d %s, got %s@%d %s", channel, offset, data, p.Channel, p.Offset, p.Data)
	}
	ps, err := protocol.ParsePositions(ev.ID, 1)
	if err != nil || ps[0].Offset != offset {
		t.Fatalf("id %q for offset %d: %v", ev.ID, offset, err)
	}
	return ev
}

// TestResumeAfterSlowConsumer stalls a stream on two channels until the
// server gives up on it, then reads what reached it: the publications the
// connection held, in order, then the end of the stream. Either way the
// session's queue overflows, since a stream on the event loop stops
// draining it once MaxBufferedBytes wait unsent. On a handler goroutine the
// stream ends with a disconnect event with code 4001 (slow consumer,
// reconnect); on the event loop the connection is closed with that event
// behind what the client never read, so a disconnect event, if one got
// out, must still say 4001. Either way, resuming from the last event id
// recovers every missed publication of both channels; the flooded one's
// backlog overflowed the queue by construction, so it is served page by
// page as the client reads. Both go on live.
func TestResumeAfterSlowConsumer(t *testing.T) {
	for _, onHandler := range []bool{true, false} {
		t.Run(map[bool]string{true: "handler goroutine", false: "event loop"}[onHandler], func(t *testing.T) {
			resumeAfterSlowConsumer(t, onHandler)
		})
	}
}

func resumeAfterSlowConsumer(t *testing.T, onHandler bool) {
	const queue = 64 << 10
	// Streams over TLS stay on their handler goroutines. The loop's buffer
	// is kept small so the stall ends in well under the flood below.
	e := setupServer(t,
		node.Config{MaxQueueBytes: queue},
		sse.Config{WriteTimeout: 30 * time.Second, MaxBufferedBytes: 16 << 10},
		func(l net.Listener) net.Listener { return smallSendBuffers{l} },
		onHandler)
	const calm, flood = "slow:calm", "slow:flood"
	healthy := e.dial("channel="+flood, nil)
	healthy.nextSubscribed(flood)
	stalled := e.dial("channel="+calm+"&channel="+flood, nil)
	stalled.nextSubscribed(calm)
	// The position a resume starts from, should no publication get through.
	ev := stalled.next()
	if ev.Name != protocol.PushSubscribed || !ev.HasID || !strings.Contains(ev.Data, flood) {
		t.Fatalf("want the subscribed event with id for %s, got %+v", flood, ev)
	}
	lastID := ev.ID
	// From here on the test does not receive from stalled until the flood
	// is over, so its reader stops reading the connection.

	// Eight times the queue: more than the queue and the kernel's buffers
	// of the connection (a 4 KiB send buffer, and a receive window that
	// does not grow while nothing is read) can hold.
	data := `"` + strings.Repeat("x", 8<<10) + `"`
	const floods = 8 * queue / (8 << 10)
	var lastCalm uint64
	for i := range floods {
		if i%16 == 0 {
			lastCalm = e.publish(calm, fmt.Sprint(i), false)
		}
		off := e.publish(flood, data, false)
		// Pace on the healthy stream: the fan-out that reached it also
		// queued the publication for the stalled one.
		if p, _ := healthy.nextPublication(true); p.Offset != off {
			t.Fatalf("healthy client got offset %d, want %d", p.Offset, off)
		}
	}

	var got = map[string][]uint64{}
	var disconnect *protocol.DisconnectPush
	for {
		ev, ok := stalled.raw()
		if !ok {
			break
		}
		if disconnect != nil {
			t.Fatalf("%+v after the disconnect event", ev)
		}
		switch {
		case ev.Name == "" && ev.Data != "":
			var p publication
			if err := json.Unmarshal([]byte(ev.Data), &p); err != nil || !ev.HasID {
				t.Fatalf("publication event %+v: %v", ev, err)
			}
			if offs := got[p.Channel]; len(offs) > 0 && p.Offset != offs[len(offs)-1]+1 {
				t.Fatalf("%s: offset %d after %d", p.Channel, p.Offset, offs[len(offs)-1])
			}
			got[p.Channel] = append(got[p.Channel], p.Offset)
			lastID = ev.ID
		case ev.Name == protocol.PushDisconnect:
			disconnect = &protocol.DisconnectPush{}
			if err := json.Unmarshal([]byte(ev.Data), disconnect); err != nil {
				t.Fatalf("disconnect event %+v: %v", ev, err)
			}
		}
	}
	switch {
	case disconnect == nil && onHandler:
		t.Fatalf("stalled stream ended without a disconnect event (got publications %v), want one with code 4001", got)
	case disconnect != nil && (disconnect.Disconnect != protocol.DisconnectSlowConsumer || disconnect.Type != protocol.PushDisconnect):
		t.Fatalf("stalled stream ended with %+v, want code 4001 (slow consumer)", disconnect)
	}
	if n := len(got[flood]); n >= floods {
		t.Fatalf("stalled stream got all %d flood publications: it was never cut off", n)
	}
	stalled.close()

	// Each channel's subscribed event is followed by what it recovers.
	resumed := e.dial("channel="+calm+"&channel="+flood, http.Header{"Last-Event-ID": {lastID}})
	if s := resumed.nextSubscribed(calm); !s.WasRecovering || !s.Recovered {
		t.Fatalf("%s resumed with %+v, want recovered", calm, s)
	}
	from := positions(t, lastID)[0].Offset
	if from >= lastCalm {
		t.Fatalf("%s missed nothing (last received %d of %d): the test shows no recovery", calm, from, lastCalm)
	}
	for off := from + 1; off <= lastCalm; off++ {
		resumed.expectPublication(0, calm, off, fmt.Sprint((off-1)*16))
	}
	if s := resumed.nextSubscribed(flood); !s.WasRecovering || !s.Recovered {
		t.Fatalf("%s resumed with %+v, want recovered", flood, s)
	}
	// The flood's backlog overflowed the queue once already: it comes page
	// by page as this client reads, every publication once, in order.
	fromFlood := positions(t, lastID)[1].Offset
	for off := fromFlood + 1; off <= floods; off++ {
		resumed.expectPublication(1, flood, off, data)
	}
	resumed.expectPublication(0, calm, e.publish(calm, `"live"`, false), `"live"`)
	resumed.expectPublication(1, flood, e.publish(flood, `"live"`, false), `"live"`)
}
