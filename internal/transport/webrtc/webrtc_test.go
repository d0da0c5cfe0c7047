package webrtc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// harness is a node and the data-channel transport at /webrtc on a real
// HTTP server on 127.0.0.1. Everything is shut down when the test ends,
// in the order a server does it, and no goroutine may outlive it.
type harness struct {
	t    *testing.T
	node *node.Node
	srv  *Server
	url  string
	done bool
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	n, err := node.New(node.Config{Engine: memory.New(memory.Config{}), Dev: true, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Node = n
	cfg.IncludeLoopback = true
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	h := &harness{t: t, node: n, srv: s, url: hs.URL}
	t.Cleanup(func() {
		if !h.done {
			h.shutdown()
		}
		hs.Close()
	})
	return h
}

func (h *harness) shutdown() {
	h.t.Helper()
	h.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.node.Shutdown(ctx); err != nil {
		h.t.Errorf("node shutdown: %v", err)
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		h.t.Errorf("webrtc shutdown: %v", err)
	}
}

func (h *harness) publish(channel string, data string) uint64 {
	h.t.Helper()
	res, err := h.node.Publish(context.Background(), protocol.PublishRequest{Channel: channel, Data: json.RawMessage(data)})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Offset
}

// testPeer is a pion peer connection to the server, recording the frames each
// of its channels receives.
type testPeer struct {
	t      *testing.T
	pc     *pion.PeerConnection
	dc     *pion.DataChannel
	frames chan labelled
	closed chan struct{}
	nextID uint32
}

type labelled struct {
	label string
	frame map[string]any
}

// dial connects to h with the given channels ("herald" first, if wanted).
func dial(t *testing.T, h *harness, withLatest bool) *testPeer {
	t.Helper()
	p := offer(t, h.url, withLatest)
	select {
	case <-waitOpen(p.dc):
	case <-time.After(10 * time.Second):
		t.Fatal("the herald channel did not open")
	}
	return p
}

func offer(t *testing.T, url string, withLatest bool) *testPeer {
	t.Helper()
	return offerEditing(t, url, withLatest, nil)
}

// offerEditing is offer with the server's answer passed through edit
// before the peer applies it, as a client that ignores parts of it would.
func offerEditing(t *testing.T, url string, withLatest bool, edit func(sdp string) string) *testPeer {
	t.Helper()
	pc, err := pion.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPeer{t: t, pc: pc, frames: make(chan labelled, 1024), closed: make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		if s == pion.PeerConnectionStateClosed || s == pion.PeerConnectionStateFailed {
			once.Do(func() { close(p.closed) })
		}
	})
	t.Cleanup(func() { _ = pc.Close() })
	if p.dc, err = pc.CreateDataChannel(LabelReliable, nil); err != nil {
		t.Fatal(err)
	}
	p.record(p.dc)
	if withLatest {
		unordered, none := false, uint16(0)
		latest, err := pc.CreateDataChannel(LabelLatest, &pion.DataChannelInit{Ordered: &unordered, MaxRetransmits: &none})
		if err != nil {
			t.Fatal(err)
		}
		p.record(latest)
	}
	answer, status := exchange(t, url, pc)
	if status != http.StatusOK {
		t.Fatalf("offer answered %d", status)
	}
	if edit != nil {
		answer.SDP = edit(answer.SDP)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	return p
}

// exchange posts pc's offer and returns the answer and the HTTP status.
func exchange(t *testing.T, url string, pc *pion.PeerConnection) (pion.SessionDescription, int) {
	t.Helper()
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(pc.LocalDescription())
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer pion.SessionDescription
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			t.Fatal(err)
		}
	}
	return answer, resp.StatusCode
}

func waitOpen(dc *pion.DataChannel) <-chan struct{} {
	open := make(chan struct{})
	var once sync.Once
	dc.OnOpen(func() { once.Do(func() { close(open) }) })
	if dc.ReadyState() == pion.DataChannelStateOpen {
		once.Do(func() { close(open) })
	}
	return open
}

func (p *testPeer) record(dc *pion.DataChannel) {
	dc.OnMessage(func(msg pion.DataChannelMessage) {
		for line := range strings.SplitSeq(string(msg.Data), "\n") {
			var f map[string]any
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				p.t.Errorf("%s: bad frame %q", dc.Label(), line)
				return
			}
			p.frames <- labelled{dc.Label(), f}
		}
	})
}

// call sends a command on "herald" and returns its reply, recording the
// frames that came before it for next.
func (p *testPeer) call(method string, params any) map[string]any {
	p.t.Helper()
	p.nextID++
	id := p.nextID
	cmd := map[string]any{"id": id, "method": method}
	if params != nil {
		cmd["params"] = params
	}
	b, _ := json.Marshal(cmd)
	if err := p.dc.SendText(string(b)); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-p.frames:
			if got, ok := f.frame["id"].(float64); ok && uint32(got) == id {
				return f.frame
			}
			if !noise(f) {
				p.t.Fatalf("%s: unexpected frame before the reply to %s: %v", f.label, method, f.frame)
			}
		case <-deadline:
			p.t.Fatalf("no reply to %s", method)
		}
	}
}

// next returns the next frame that is not a heartbeat or a presence event.
func (p *testPeer) next() labelled {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-p.frames:
			if !noise(f) {
				return f
			}
		case <-deadline:
			p.t.Fatal("no frame")
		}
	}
}

func noise(f labelled) bool {
	switch f.frame["type"] {
	case "ping", "join", "leave":
		return true
	}
	return false
}

func TestSessionOverDataChannel(t *testing.T) {
	h := newHarness(t, Config{})
	p := dial(t, h, false)
	res := p.call("connect", nil)
	if r, ok := res["result"].(map[string]any); !ok || r["client"] == "" {
		t.Fatalf("connect reply %v", res)
	}
	if r := p.call("subscribe", map[string]any{"channel": "news"}); r["error"] != nil {
		t.Fatalf("subscribe reply %v", r)
	}
	for i := 1; i <= 3; i++ {
		off := h.publish("news", fmt.Sprintf(`{"n":%d}`, i))
		f := p.next()
		if f.label != LabelReliable || f.frame["type"] != "publication" || f.frame["offset"] != float64(off) {
			t.Fatalf("publication %d: %s %v", i, f.label, f.frame)
		}
	}
	// A channel the peer does not follow: on "news" its own publication
	// could come back before the reply.
	if r := p.call("publish", map[string]any{"channel": "notes", "data": map[string]int{"n": 4}}); r["error"] != nil {
		t.Fatalf("publish reply %v", r)
	}
}

// TestLatestSubscriptionTakesUnreliableChannel: a latest-only subscription's
// publications come on "herald-latest", never on "herald", and the newest
// always arrives on a loss-free loopback; a reliable subscription on the
// same connection keeps every publication on "herald".
func TestLatestSubscriptionTakesUnreliableChannel(t *testing.T) {
	h := newHarness(t, Config{})
	p := dial(t, h, true)
	p.call("connect", nil)
	testkit.WaitFor(t, 5*time.Second, "herald-latest to open", func() bool {
		for _, pr := range h.srv.peers.Members() {
			if pr.latestChannel() == nil {
				return false
			}
		}
		return true
	})
	if r := p.call("subscribe", map[string]any{"channel": "cursor", "delivery": "latest"}); r["error"] != nil {
		t.Fatalf("subscribe reply %v", r)
	}
	if r := p.call("subscribe", map[string]any{"channel": "chat"}); r["error"] != nil {
		t.Fatalf("subscribe reply %v", r)
	}
	const n = 200
	var newest uint64
	for i := 1; i <= n; i++ {
		newest = h.publish("cursor", fmt.Sprintf(`{"x":%d}`, i))
		h.publish("chat", fmt.Sprintf(`{"n":%d}`, i))
	}
	seen := map[float64]bool{}
	var chat []float64
	for len(chat) < n || !seen[float64(newest)] {
		f := p.next()
		if f.frame["type"] != "publication" {
			continue
		}
		switch f.frame["channel"] {
		case "cursor":
			if f.label != LabelLatest {
				t.Fatalf("cursor publication on %s", f.label)
			}
			off := f.frame["offset"].(float64)
			if seen[off] {
				t.Fatalf("cursor offset %v twice", off)
			}
			seen[off] = true
		case "chat":
			if f.label != LabelReliable {
				t.Fatalf("chat publication on %s", f.label)
			}
			chat = append(chat, f.frame["offset"].(float64))
		}
	}
	for i, off := range chat {
		if off != float64(i+1) {
			t.Fatalf("chat offsets %v", chat)
		}
	}
	t.Logf("%d of %d cursor values sent, the newest included; %d chat publications in order", len(seen), n, len(chat))
}

func TestUnknownDeliveryRefused(t *testing.T) {
	h := newHarness(t, Config{})
	p := dial(t, h, false)
	p.call("connect", nil)
	r := p.call("subscribe", map[string]any{"channel": "x", "delivery": "sometimes"})
	if e, ok := r["error"].(map[string]any); !ok || e["code"] != float64(protocol.ErrBadRequest.Code) {
		t.Fatalf("reply %v", r)
	}
}

func TestBadOffersRefused(t *testing.T) {
	h := newHarness(t, Config{})
	resp, err := http.Get(h.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET answered %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	for name, body := range map[string]string{
		"not JSON":     `offer`,
		"an answer":    `{"type":"answer","sdp":"v=0"}`,
		"no SDP":       `{"type":"offer"}`,
		"garbage SDP":  `{"type":"offer","sdp":"hello"}`,
		"too large":    `{"type":"offer","sdp":"` + strings.Repeat("a", maxOfferSize) + `"}`,
		"no data part": `{"type":"offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}`,
	} {
		resp, err := http.Post(h.url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error protocol.Error `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || e.Error.Code != protocol.ErrBadRequest.Code {
			t.Errorf("%s: answered %d, %+v, %v", name, resp.StatusCode, e, err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "refused peers to be released", func() bool {
		return len(h.srv.peers.Members()) == 0 && h.srv.handshakes.Load() == 0
	})
}

// TestHandshakesBounded: a peer connection whose "herald" channel never
// opens holds a handshake slot until HandshakeTimeout, and no more than
// MaxHandshakes may be held at once.
func TestHandshakesBounded(t *testing.T) {
	h := newHarness(t, Config{MaxHandshakes: 1, HandshakeTimeout: 500 * time.Millisecond})
	stalled := func() int {
		pc, err := pion.NewPeerConnection(pion.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.CreateDataChannel("not-herald", nil); err != nil {
			t.Fatal(err)
		}
		_, status := exchange(t, h.url, pc)
		return status
	}
	if s := stalled(); s != http.StatusOK {
		t.Fatalf("first offer answered %d", s)
	}
	if s := stalled(); s != http.StatusTooManyRequests {
		t.Fatalf("second offer during the first handshake answered %d", s)
	}
	testkit.WaitFor(t, 5*time.Second, "the stalled handshake to expire", func() bool {
		return len(h.srv.peers.Members()) == 0 && h.srv.handshakes.Load() == 0
	})
	p := dial(t, h, false)
	if r := p.call("connect", nil); r["error"] != nil {
		t.Fatalf("connect after the slot was released: %v", r)
	}
}

// TestShutdownSaysWhy: a node shutting down tells the client, on the
// channel itself, that it should reconnect (4000), then closes the peer
// connection; every goroutine ends (the harness checks).
func TestShutdownSaysWhy(t *testing.T) {
	h := newHarness(t, Config{})
	p := dial(t, h, true)
	p.call("connect", nil)
	go h.shutdown()
	for {
		f := p.next()
		if f.frame["type"] == "disconnect" {
			if f.label != LabelReliable || f.frame["code"] != float64(protocol.DisconnectShutdown.Code) || f.frame["reconnect"] != true {
				t.Fatalf("disconnect %s %v", f.label, f.frame)
			}
			break
		}
	}
	select {
	case <-p.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the peer connection stayed open")
	}
	testkit.WaitFor(t, 10*time.Second, "every peer to be released", func() bool {
		return len(h.srv.peers.Members()) == 0
	})
}

// TestClientGoneEndsSession: a client that closes its peer connection
// leaves presence, as a closed WebSocket would.
func TestClientGoneEndsSession(t *testing.T) {
	h := newHarness(t, Config{})
	p := dial(t, h, false)
	p.call("connect", nil)
	p.call("subscribe", map[string]any{"channel": "room"})
	members := func() int {
		info, err := h.node.Presence(context.Background(), "room")
		if err != nil {
			t.Fatal(err)
		}
		return len(info)
	}
	if members() != 1 {
		t.Fatalf("%d members after subscribing", members())
	}
	_ = p.pc.Close()
	testkit.WaitFor(t, 20*time.Second, "the session to end", func() bool { return members() == 0 })
}

// TestOversizedMessageCloses4502: a client that ignores the answer's
// a=max-message-size and sends a message over MaxMessageSize is told
// 4502 "message too large" in a disconnect push, its command is not
// answered, and the peer connection is closed; a message of exactly the
// limit is served.
func TestOversizedMessageCloses4502(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		// over is how far the oversized message goes beyond the limit. It
		// stays within pion's SCTP receive buffer (1 MiB): a larger message
		// can never be reassembled, so it stalls the association, and the
		// heartbeat ends the connection (4002) instead.
		over int
	}{
		{"small limit", 1024, 1},
		{"default limit", 0, 1},
		{"far over the default limit", 0, 768 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxMessageSize: tc.limit})
			limit := h.srv.cfg.MaxMessageSize
			advertised := fmt.Sprintf("a=max-message-size:%d", limit)
			p := offerEditing(t, h.url, false, func(sdp string) string {
				if !strings.Contains(sdp, advertised) {
					t.Errorf("answer does not advertise %q:\n%s", advertised, sdp)
				}
				return strings.ReplaceAll(sdp, advertised, "a=max-message-size:67108864")
			})
			select {
			case <-waitOpen(p.dc):
			case <-time.After(10 * time.Second):
				t.Fatal("the herald channel did not open")
			}
			p.call("connect", nil)
			// padded is a ping command of exactly n bytes.
			padded := func(id, n int) string {
				head := fmt.Sprintf(`{"id":%d,"method":"ping","params":{"pad":"`, id)
				return head + strings.Repeat("x", n-len(head)-3) + `"}}`
			}
			at := padded(100, limit)
			if len(at) != limit {
				t.Fatalf("built %d bytes, want %d", len(at), limit)
			}
			if err := p.dc.SendText(at); err != nil {
				t.Fatal(err)
			}
			if f := p.next(); f.frame["id"] != float64(100) || f.frame["error"] != nil {
				t.Fatalf("a message of exactly the limit: %v", f.frame)
			}
			if err := p.dc.SendText(padded(101, limit+tc.over)); err != nil {
				t.Fatal(err)
			}
			f := p.next()
			if f.frame["id"] != nil {
				t.Fatalf("the oversized command was answered: %v", f.frame)
			}
			if f.label != LabelReliable || f.frame["type"] != "disconnect" || f.frame["code"] != float64(protocol.DisconnectMessageTooLarge.Code) ||
				f.frame["reason"] != protocol.DisconnectMessageTooLarge.Reason || f.frame["reconnect"] != false {
				t.Fatalf("after an oversized message: %s %v, want a disconnect push 4502 %q", f.label, f.frame, protocol.DisconnectMessageTooLarge.Reason)
			}
			select {
			case <-p.closed:
			case <-time.After(20 * time.Second):
				t.Fatal("the peer connection stayed open")
			}
			testkit.WaitFor(t, 10*time.Second, "the peer to be released", func() bool {
				return len(h.srv.peers.Members()) == 0
			})
		})
	}
}
