package websocket

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestConnectSubscribeAndBurst(t *testing.T) {
	for _, mode := range []struct {
		name string
		tls  bool
	}{{"polled", false}, {"blocking-tls", true}} {
		t.Run(mode.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{tls: mode.tls})
			ctx := testContext(t)
			c := h.dial(ctx)

			res := c.connect(ctx)
			if len(res.Client) != 26 {
				t.Fatalf("connect reply: client id %q", res.Client)
			}
			sub := c.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:burst"})
			if sub.Epoch == "" || sub.Offset != 0 || !sub.Recoverable {
				t.Fatalf("subscribe reply: %+v", sub)
			}

			const n = 1000
			for i := 1; i <= n; i++ {
				publish(t, h.node, "chat:burst", fmt.Sprintf(`{"n":%d}`, i))
			}
			for i := 1; i <= n; i++ {
				f := c.mustRead(ctx)
				if f.Type != protocol.PushPublication || f.Channel != "chat:burst" || f.Offset != uint64(i) {
					t.Fatalf("frame %d: %+v", i, f)
				}
				var d struct{ N int }
				if err := json.Unmarshal(f.Data, &d); err != nil || d.N != i {
					t.Fatalf("frame %d data %s", i, f.Data)
				}
			}
			t.Logf("%d frames arrived in %d messages", c.frames, c.messages)
		})
	}
}

func TestClientPublishReachesOtherSubscriber(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	a, b := h.dial(ctx), h.dial(ctx)
	a.connect(ctx)
	b.connect(ctx)
	b.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:room"})

	var res protocol.PublishResult
	a.call(ctx, protocol.MethodPublish, protocol.PublishRequest{Channel: "chat:room", Data: json.RawMessage(`{"text":"hi"}`)}, &res)
	if res.Offset != 1 || res.Epoch == "" {
		t.Fatalf("publish reply: %+v", res)
	}
	f := b.mustRead(ctx)
	if f.Type != protocol.PushPublication || f.Offset != 1 || string(f.Data) != `{"text":"hi"}` {
		t.Fatalf("subscriber got %+v", f)
	}
}

func TestPipelinedCommandsKeepOrder(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	c := h.dial(ctx)
	c.connect(ctx)
	// Several commands in one message and several messages in a row: the
	// replies come back in the order the commands were sent.
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":%d,"method":"publish","params":{"channel":"chat:p","data":{"i":%d}}}`, 100+i, i))
	}
	c.writeRaw(ctx, []byte(strings.Join(lines, "\n")))
	for i := 0; i < 20; i++ {
		c.writeRaw(ctx, []byte(fmt.Sprintf(`{"id":%d,"method":"publish","params":{"channel":"chat:p","data":{"i":%d}}}`, 200+i, 10+i)))
	}
	for i := 0; i < 30; i++ {
		f := c.mustRead(ctx)
		want := uint32(100 + i)
		if i >= 10 {
			want = uint32(200 + i - 10)
		}
		var res protocol.PublishResult
		_ = json.Unmarshal(f.Result, &res)
		if f.ID != want || f.Error != nil || res.Offset != uint64(i+1) {
			t.Fatalf("reply %d: %+v (result %s)", i, f, f.Result)
		}
	}
}

func TestResume(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	const ch = "news:resume"

	c := h.dial(ctx)
	c.connect(ctx)
	sub := c.subscribe(ctx, protocol.SubscribeRequest{Channel: ch})
	for i := 1; i <= 3; i++ {
		publish(t, h.node, ch, fmt.Sprintf(`{"n":%d}`, i))
	}
	c.expectPublications(ctx, ch, 1, 3)
	if err := c.c.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, "the first session to finish", func() bool { return h.node.Info().NumClients == 0 })

	for i := 4; i <= 6; i++ {
		publish(t, h.node, ch, fmt.Sprintf(`{"n":%d}`, i))
	}

	c = h.dial(ctx)
	c.connect(ctx)
	res := c.subscribe(ctx, protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: sub.Epoch, Offset: 3})
	if !res.Recovered || !res.WasRecovering || res.Epoch != sub.Epoch || res.Offset != 6 {
		t.Fatalf("recovering subscribe reply: %+v", res)
	}
	c.expectPublications(ctx, ch, 4, 6)
	publish(t, h.node, ch, `{"n":7}`)
	c.expectPublications(ctx, ch, 7, 7)

	// A position from another epoch cannot be resumed: the client is told so.
	d := h.dial(ctx)
	d.connect(ctx)
	res = d.subscribe(ctx, protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: "otherepoch", Offset: 3})
	if res.Recovered || !res.WasRecovering || res.Offset != 7 {
		t.Fatalf("subscribe with a bad epoch: %+v", res)
	}
	publish(t, h.node, ch, `{"n":8}`)
	d.expectPublications(ctx, ch, 8, 8)
}

func TestErrorReplies(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	c := h.dial(ctx)

	r := c.reply(ctx, c.send(ctx, protocol.MethodSubscribe, protocol.SubscribeRequest{Channel: "chat:x"}), false)
	if r.Error == nil || r.Error.Code != protocol.ErrNotConnected.Code {
		t.Fatalf("command before connect: %+v", r)
	}
	c.connect(ctx)
	r = c.reply(ctx, c.send(ctx, "teleport", nil), false)
	if r.Error == nil || r.Error.Code != protocol.ErrMethodNotFound.Code {
		t.Fatalf("unknown method: %+v", r)
	}
	r = c.reply(ctx, c.send(ctx, protocol.MethodSubscribe, protocol.SubscribeRequest{Channel: "no spaces allowed"}), false)
	if r.Error == nil || r.Error.Code != protocol.ErrInvalidChannel.Code {
		t.Fatalf("invalid channel: %+v", r)
	}
	// The connection survives error replies.
	c.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:x"})
}

func TestCloseCodes(t *testing.T) {
	tests := []struct {
		name string
		tls  bool
		// act misbehaves on a connected client.
		act  func(t *testing.T, h *harness, c *wsClient)
		want protocol.Disconnect
	}{
		{
			name: "malformed JSON",
			act:  func(t *testing.T, h *harness, c *wsClient) { c.writeRaw(testContext(t), []byte(`{"id":1,"method":`)) },
			want: protocol.DisconnectBadRequest,
		},
		{
			name: "binary message",
			act: func(t *testing.T, h *harness, c *wsClient) {
				if err := c.c.Write(testContext(t), cws.MessageBinary, []byte(`{"id":1,"method":"ping"}`)); err != nil {
					t.Fatal(err)
				}
			},
			want: protocol.DisconnectBadRequest,
		},
		{
			name: "oversized message",
			act:  func(t *testing.T, h *harness, c *wsClient) { c.writeRaw(testContext(t), oversized(2048)) },
			want: protocol.DisconnectMessageTooLarge,
		},
		{
			name: "oversized message over TLS",
			tls:  true,
			act:  func(t *testing.T, h *harness, c *wsClient) { c.writeRaw(testContext(t), oversized(2048)) },
			want: protocol.DisconnectMessageTooLarge,
		},
		{
			name: "huge oversized message",
			act:  func(t *testing.T, h *harness, c *wsClient) { c.writeRaw(testContext(t), oversized(4<<20)) },
			want: protocol.DisconnectMessageTooLarge,
		},
		{
			name: "oversized fragmented message",
			act: func(t *testing.T, h *harness, c *wsClient) {
				w, err := c.c.Writer(testContext(t), cws.MessageText)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 4; i++ { // each fragment fits, the message does not
					if _, err := w.Write(make([]byte, 400)); err != nil {
						t.Fatal(err)
					}
				}
				_ = w.Close()
			},
			want: protocol.DisconnectMessageTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{tls: tt.tls, ws: Config{MaxMessageSize: 1024, WriteTimeout: 5 * time.Second}})
			ctx := testContext(t)
			c := h.dial(ctx)
			c.connect(ctx)
			tt.act(t, h, c)
			c.expectClose(ctx, tt.want)
			testkit.WaitFor(t, 5*time.Second, "the session to finish", func() bool { return h.node.Info().NumClients == 0 })
		})
	}
}

// oversized is a well-formed command of n bytes.
func oversized(n int) []byte {
	prefix := `{"id":1,"method":"publish","params":{"channel":"chat:x","data":"`
	b := []byte(prefix + strings.Repeat("x", n-len(prefix)-3) + `"}}`)
	return b
}

func TestMessageAtLimitPasses(t *testing.T) {
	h := newHarness(t, harnessOptions{ws: Config{MaxMessageSize: 1024}})
	ctx := testContext(t)
	c := h.dial(ctx)
	c.connect(ctx)
	c.writeRaw(ctx, oversized(1024))
	if r := c.reply(ctx, 1, false); r.Error != nil {
		t.Fatalf("reply to a message of exactly MaxMessageSize: %+v", r)
	}
}

func TestNoPong(t *testing.T) {
	h := newHarness(t, harnessOptions{node: node.Config{PingInterval: 300 * time.Millisecond, PongTimeout: 250 * time.Millisecond}})
	ctx := testContext(t)
	silent := h.dial(ctx)
	silent.connect(ctx)
	alive := h.dial(ctx)
	alive.connect(ctx)

	// The client that answers pings stays while the silent one is dropped.
	for pings := 0; pings < 3 || h.node.Info().NumClients != 1; {
		f := alive.mustRead(ctx)
		if f.Type == protocol.PushPing {
			pings++
			alive.writeRaw(ctx, []byte(`{"method":"pong"}`))
		}
	}
	silent.expectClose(ctx, protocol.DisconnectNoPong)

	id := alive.send(ctx, protocol.MethodPing, nil)
	for {
		f := alive.mustRead(ctx)
		if f.Type == protocol.PushPing {
			alive.writeRaw(ctx, []byte(`{"method":"pong"}`))
			continue
		}
		if f.ID != id || f.Error != nil {
			t.Fatalf("ping reply: %+v", f)
		}
		break
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	c := h.dial(ctx)
	c.connect(ctx)
	c.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:bye"})
	idle := h.dial(ctx) // never connects

	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.node.Shutdown(shutdownCtx) }()
	c.expectClose(ctx, protocol.DisconnectShutdown)
	idle.expectClose(ctx, protocol.DisconnectShutdown)
	if err := <-done; err != nil {
		t.Fatalf("node shutdown: %v", err)
	}
	// A draining node refuses new sessions before the upgrade.
	if _, err := h.tryDial(ctx); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("dial during shutdown: %v", err)
	}
	if err := h.ws.Shutdown(shutdownCtx); err != nil {
		t.Fatalf("websocket shutdown: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a node succeeded")
	}
}

func TestRefusedUpgrades(t *testing.T) {
	h := newHarness(t, harnessOptions{ws: Config{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") != "https://evil.example"
	}}})
	ctx := testContext(t)

	_, resp, err := cws.Dial(ctx, h.url, &cws.DialOptions{HTTPClient: h.client, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial from a refused origin: %v, %v", err, resp)
	}
	// A plain GET is not an upgrade.
	resp, err = h.client.Get(strings.Replace(h.url, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: HTTP %d", resp.StatusCode)
	}
	// Refused upgrades leave no session behind.
	testkit.WaitFor(t, 5*time.Second, "no session", func() bool { return h.node.Info().NumClients == 0 })

	// Before Start, nothing is upgraded.
	ws, err := New(Config{Node: h.node})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ws.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ws", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("ServeHTTP before Start: HTTP %d", rec.Code)
	}
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown of a server never started: %v", err)
	}
	if err := ws.Start(); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestAbruptDisconnectFinishesSession(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t)
	c := h.dial(ctx)
	c.connect(ctx)
	c.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:gone"})
	if got := h.node.Channels()["chat:gone"]; got != 1 {
		t.Fatalf("channel has %d local subscribers", got)
	}
	_ = c.c.CloseNow() // TCP close, no close handshake
	testkit.WaitFor(t, 5*time.Second, "the session to finish", func() bool {
		return h.node.Info().NumClients == 0 && h.node.Channels()["chat:gone"] == 0
	})
}

func TestLargeFrameIsSentAlone(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			h := newHarness(t, harnessOptions{tls: tls})
			ctx := testContext(t)
			c := h.dial(ctx)
			c.connect(ctx)
			c.subscribe(ctx, protocol.SubscribeRequest{Channel: "chat:big"})
			// A frame over the 64 KiB coalescing cap between two small ones:
			// three messages, the big one written (and fragmented) by itself.
			big := `{"pad":"` + strings.Repeat("y", 64<<10-20) + `"}`
			publish(t, h.node, "chat:big", `{"n":1}`)
			publish(t, h.node, "chat:big", big)
			publish(t, h.node, "chat:big", `{"n":3}`)
			c.expectPublications(ctx, "chat:big", 1, 1)
			f := c.mustRead(ctx)
			if f.Offset != 2 || string(f.Data) != big {
				t.Fatalf("large publication: offset %d, %d bytes of data", f.Offset, len(f.Data))
			}
			c.expectPublications(ctx, "chat:big", 3, 3)
		})
	}
}

func TestCloseReasonFitsAControlFrame(t *testing.T) {
	if got := closeReason("short"); got != "short" {
		t.Fatalf("closeReason(short) = %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes of two-byte runes
	got := closeReason(long)
	if len(got) > maxCloseReason || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Fatalf("closeReason gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}
