package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
	"github.com/heraldrt/herald/internal/testkit"
)

// signalMessage is what the test's peers put in a signal's data, in the
// shapes docs/protocol.md gives.
type signalMessage struct {
	SDP       *webrtc.SessionDescription `json:"description,omitempty"`
	Candidate *webrtc.ICECandidateInit   `json:"candidate,omitempty"`
}

// rtcPeer is a pion peer connection whose signaling goes through a Herald
// WebSocket connection.
type rtcPeer struct {
	t    *testing.T
	ws   *wsConn
	room string
	pc   *webrtc.PeerConnection
	// remote is the client id of the other peer.
	remote string
	// pending holds candidates that arrive before the remote description.
	pending []webrtc.ICECandidateInit
}

// iceServers asks Herald for its STUN/TURN servers and credentials.
func iceServers(t *testing.T, ctx context.Context, ws *wsConn) protocol.ICEServersResult {
	t.Helper()
	raw, err := ws.call(ctx, protocol.MethodICEServers, struct{}{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res protocol.ICEServersResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// newRelayPeer builds a peer connection that may only use relayed
// candidates, through the TURN server Herald names.
func newRelayPeer(t *testing.T, ctx context.Context, ws *wsConn, room string) *rtcPeer {
	t.Helper()
	res := iceServers(t, ctx, ws)
	cfg := webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	for _, s := range res.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	var se webrtc.SettingEngine
	// The relay lives on loopback in this test; pion skips loopback unless told.
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p := &rtcPeer{t: t, ws: ws, room: room, pc: pc}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.send(signalMessage{Candidate: &init})
	})
	return p
}

func (p *rtcPeer) send(m signalMessage) {
	data, err := json.Marshal(m)
	if err != nil {
		p.t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.ws.call(ctx, protocol.MethodSignal, protocol.SignalRequest{Channel: p.room, To: p.remote, Data: data}, nil); err != nil {
		p.t.Errorf("signal to %s: %v", p.remote, err)
	}
}

// handle applies one signal from the other peer, answering offers.
func (p *rtcPeer) handle(e event) error {
	if e.from != p.remote || e.channel != p.room {
		return fmt.Errorf("signal from %q in %q, want %q in %q", e.from, e.channel, p.remote, p.room)
	}
	var m signalMessage
	if err := json.Unmarshal(e.data, &m); err != nil {
		return err
	}
	switch {
	case m.SDP != nil:
		if err := p.pc.SetRemoteDescription(*m.SDP); err != nil {
			return err
		}
		for _, c := range p.pending {
			if err := p.pc.AddICECandidate(c); err != nil {
				return err
			}
		}
		p.pending = nil
		if m.SDP.Type == webrtc.SDPTypeOffer {
			answer, err := p.pc.CreateAnswer(nil)
			if err != nil {
				return err
			}
			if err := p.pc.SetLocalDescription(answer); err != nil {
				return err
			}
			p.send(signalMessage{SDP: p.pc.LocalDescription()})
		}
	case m.Candidate != nil:
		if p.pc.RemoteDescription() == nil {
			p.pending = append(p.pending, *m.Candidate)
			return nil
		}
		return p.pc.AddICECandidate(*m.Candidate)
	}
	return nil
}

// pump applies the signals p's connection receives until ctx ends.
func (p *rtcPeer) pump(ctx context.Context, errs chan<- error) {
	for {
		select {
		case e := <-p.ws.events():
			if e.kind != "signal" {
				continue
			}
			if err := p.handle(e); err != nil {
				errs <- err
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// Two pion peers in this process find each other through Herald's
// signaling (a room channel, directed offer, answer and ICE candidates) and
// exchange data over a connection that may only use Herald's TURN relay.
func TestWebRTCPeersConnectThroughSignalingAndRelay(t *testing.T) {
	base := startServer(t, func(c *server.Config) { c.TURN.Enabled = "on" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "call:relay"
	open := func() *wsConn {
		c, err := openWebSocket(ctx, base, []string{room}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.close)
		return c.(*wsConn)
	}
	alice, bob := open(), open()

	res := iceServers(t, ctx, alice)
	if len(res.ICEServers) != 1 || res.TTL <= 0 {
		t.Fatalf("ice servers %+v, want one TURN server with a ttl", res)
	}
	turnURLs := strings.Join(res.ICEServers[0].URLs, " ")
	for _, want := range []string{"stun:127.0.0.1:", "turn:127.0.0.1:", "?transport=udp", "?transport=tcp"} {
		if !strings.Contains(turnURLs, want) {
			t.Errorf("TURN URLs %q lack %q", turnURLs, want)
		}
	}
	if user := res.ICEServers[0].Username; !strings.Contains(user, ":anonymous-") {
		t.Errorf("username %q is not expiry:user", user)
	}

	a, b := newRelayPeer(t, ctx, alice, room), newRelayPeer(t, ctx, bob, room)
	a.remote, b.remote = bob.id, alice.id
	errs := make(chan error, 2)
	go a.pump(ctx, errs)
	go b.pump(ctx, errs)

	received := map[string]chan string{"alice": make(chan string, 1), "bob": make(chan string, 1)}
	b.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			received["bob"] <- string(m.Data)
			_ = dc.SendText("hello alice")
		})
	})
	dc, err := a.pc.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { _ = dc.SendText("hello bob") })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { received["alice"] <- string(m.Data) })

	offer, err := a.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	a.send(signalMessage{SDP: a.pc.LocalDescription()})

	for _, who := range []string{"bob", "alice"} {
		select {
		case got := <-received[who]:
			if want := "hello " + who; got != want {
				t.Fatalf("%s got %q, want %q", who, got, want)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("%s got nothing over the data channel: ICE %s / %s", who, a.pc.ICEConnectionState(), b.pc.ICEConnectionState())
		}
	}
	for name, p := range map[string]*rtcPeer{"alice": a, "bob": b} {
		pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s talks over a %s candidate, want relay", name, pair.Local.Typ)
		}
	}

	// A third peer connects to the server itself, with the Herald protocol
	// on a data channel: it joins the room and receives what a WebSocket
	// member publishes there.
	pubs := make(chan client.Publication, 1)
	carol, err := client.New(client.Config{URL: base, Transport: client.WebRTC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = carol.Close() })
	if err := carol.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := carol.NewSubscription(room, client.SubscriptionConfig{OnPublication: func(p client.Publication) { pubs <- p }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.publish(ctx, room, `{"text":"hi carol"}`); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-pubs:
		if string(p.Data) != `{"text":"hi carol"}` {
			t.Fatalf("carol got %s", p.Data)
		}
	case <-ctx.Done():
		t.Fatal("carol got no publication over the server's data channel")
	}
	members, err := carol.Presence(ctx, room)
	if err != nil || len(members) != 3 {
		t.Fatalf("room members %v, %v: want alice, bob and carol", members, err)
	}
}

// A signal reaches only a member of the room, from a member, and only in a
// WebRTC namespace; each refusal has its error code.
func TestSignalRefusals(t *testing.T) {
	base := startServer(t, func(c *server.Config) {
		c.Dev = false
		c.AllowAnonymous = true
		open := func(name string, webrtc bool) node.NamespaceOptions {
			return node.NamespaceOptions{Name: name, Presence: true, WebRTC: webrtc, Subscribe: node.AccessAnyone, Publish: node.AccessAnyone, PresenceAccess: node.AccessAnyone}
		}
		c.Namespaces = []node.NamespaceOptions{open("call", true), open("chat", false)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(channels ...string) *wsConn {
		c, err := openWebSocket(ctx, base, channels, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.close)
		return c.(*wsConn)
	}
	alice, bob, outsider := open("call:a", "chat:a"), open("call:a", "chat:a"), open()
	signal := func(from *wsConn, channel, to string) error {
		_, err := from.call(ctx, protocol.MethodSignal, protocol.SignalRequest{Channel: channel, To: to, Data: json.RawMessage(`{"x":1}`)}, nil)
		return err
	}
	code := func(err error) uint32 {
		var ce *clientError
		if errors.As(err, &ce) {
			return ce.code
		}
		return 0
	}
	if err := signal(alice, "call:a", bob.id); err != nil {
		t.Fatalf("member to member: %v", err)
	}
	if e := nextSignal(ctx, t, bob); e.from != alice.id || string(e.data) != `{"x":1}` {
		t.Fatalf("bob got %+v", e)
	}
	for _, c := range []struct {
		name    string
		from    *wsConn
		channel string
		to      string
		want    uint32
	}{
		{"recipient not in the room", alice, "call:a", outsider.id, protocol.ErrNoRecipient.Code},
		{"sender not in the room", outsider, "call:a", alice.id, protocol.ErrNotSubscribed.Code},
		{"not a WebRTC namespace", alice, "chat:a", bob.id, protocol.ErrNotAvailable.Code},
		{"to oneself", alice, "call:a", alice.id, protocol.ErrBadRequest.Code},
	} {
		if got := code(signal(c.from, c.channel, c.to)); got != c.want {
			t.Errorf("%s: error code %d, want %d", c.name, got, c.want)
		}
	}
}

// A signal reaches a member connected to another node, and only that
// member: the control bus carries it to the node that holds the recipient,
// over Redis and over NATS, and a third member of the room on a third node
// receives nothing of it.
func TestSignalAcrossNodes(t *testing.T) {
	for _, broker := range []string{server.EngineRedis, server.EngineNATS} {
		t.Run(broker, func(t *testing.T) {
			var tweak func(*server.Config)
			switch broker {
			case server.EngineRedis:
				url, _ := testkit.StartRedis(t)
				tweak = func(c *server.Config) { c.RedisURL, c.EnginePrefix = url, "signal" }
			case server.EngineNATS:
				nats := testkit.StartNATS(t)
				prefix := testkit.NATSPrefix()
				tweak = func(c *server.Config) { c.NATSURL, c.EnginePrefix = nats.URL, prefix }
			}
			node := func() string {
				return startServer(t, func(c *server.Config) {
					c.Engine = broker
					tweak(c)
				})
			}
			first, second, third := node(), node(), node()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			open := func(base string) *wsConn {
				c, err := openWebSocket(ctx, base, []string{"call:across"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.close)
				return c.(*wsConn)
			}
			alice, bob, carol := open(first), open(second), open(third)
			signal := func(to *wsConn, data string) {
				t.Helper()
				if _, err := alice.call(ctx, protocol.MethodSignal, protocol.SignalRequest{Channel: "call:across", To: to.id, Data: json.RawMessage(data)}, nil); err != nil {
					t.Fatalf("signal to %s: %v", to.id, err)
				}
			}
			signal(bob, `{"hi":"bob"}`)
			if e := nextSignal(ctx, t, bob); e.from != alice.id || string(e.data) != `{"hi":"bob"}` {
				t.Fatalf("bob got %+v", e)
			}
			// Carol is a member too, so the signal to bob would have reached
			// her before this one if it leaked: the first signal she gets
			// must be her own.
			signal(carol, `{"hi":"carol"}`)
			if e := nextSignal(ctx, t, carol); e.from != alice.id || string(e.data) != `{"hi":"carol"}` {
				t.Fatalf("carol's first signal is %+v, want only the one sent to her", e)
			}
		})
	}
}

// nextSignal returns the next signal c receives, skipping other events.
func nextSignal(ctx context.Context, t *testing.T, c *wsConn) event {
	t.Helper()
	for {
		select {
		case e := <-c.events():
			if e.kind == "signal" {
				return e
			}
		case <-ctx.Done():
			t.Fatal("no signal arrived")
		}
	}
}

// An offer whose "herald" data channel is unordered gets no session: the
// protocol needs its commands and publications in order, so the server
// closes the peer connection instead of answering a single command on it.
func TestWebRTCUnorderedHeraldRefused(t *testing.T) {
	base := startServer(t, nil)
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	ended := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed {
			once.Do(func() { close(ended) })
		}
	})
	unordered := false
	dc, err := pc.CreateDataChannel("herald", &webrtc.DataChannelInit{Ordered: &unordered})
	if err != nil {
		t.Fatal(err)
	}
	replies := make(chan string, 16)
	dc.OnOpen(func() { _ = dc.SendText(`{"id":1,"method":"connect","params":{}}`) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { replies <- string(m.Data) })
	dc.OnClose(func() { once.Do(func() { close(ended) }) })

	offerToServer(t, base, pc)
	select {
	case <-ended:
	case r := <-replies:
		t.Fatalf("the server answered on an unordered herald channel: %s", r)
	case <-time.After(30 * time.Second):
		t.Fatalf("the server kept the peer connection (%s, channel %s)", pc.ConnectionState(), dc.ReadyState())
	}
	select {
	case r := <-replies:
		t.Fatalf("the server answered on an unordered herald channel: %s", r)
	default:
	}
}

// offerToServer posts pc's offer, its candidates gathered, to the
// server's POST /webrtc and applies the answer.
func offerToServer(t *testing.T, base string, pc *webrtc.PeerConnection) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(pc.LocalDescription())
	resp, err := httpClient.Post(base+"/webrtc", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var answer webrtc.SessionDescription
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("offer answered %d (%v)", resp.StatusCode, err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
}

// A peer connection gets one channel of each label: a second "herald" or
// "herald-latest" is closed, as other labels are, and the first "herald"
// carries the session.
func TestWebRTCDuplicateChannelsClosed(t *testing.T) {
	base := startServer(t, nil)
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	unordered, none := false, uint16(0)
	latest := &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &none}
	var channels []*webrtc.DataChannel
	for _, c := range []struct {
		label string
		init  *webrtc.DataChannelInit
	}{{"herald", nil}, {"herald-latest", latest}, {"herald", nil}, {"herald-latest", latest}, {"other", nil}} {
		dc, err := pc.CreateDataChannel(c.label, c.init)
		if err != nil {
			t.Fatal(err)
		}
		channels = append(channels, dc)
	}
	closed := make([]chan struct{}, len(channels))
	for i, dc := range channels {
		closed[i] = make(chan struct{})
		dc.OnClose(func() { close(closed[i]) })
	}
	replies := make(chan string, 1)
	session := channels[0]
	session.OnOpen(func() { _ = session.SendText(`{"id":1,"method":"connect","params":{}}`) })
	session.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case replies <- string(m.Data):
		default:
		}
	})
	offerToServer(t, base, pc)
	for _, i := range []int{2, 3, 4} {
		select {
		case <-closed[i]:
		case <-time.After(20 * time.Second):
			t.Fatalf("channel %d (%q) stayed %s", i, channels[i].Label(), channels[i].ReadyState())
		}
	}
	select {
	case r := <-replies:
		if !strings.Contains(r, `"id":1`) || !strings.Contains(r, `"client"`) {
			t.Fatalf("connect reply %s", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no connect reply on the first herald channel")
	}
	for _, i := range []int{0, 1} {
		if st := channels[i].ReadyState(); st != webrtc.DataChannelStateOpen {
			t.Errorf("channel %d (%q) is %s, want open", i, channels[i].Label(), st)
		}
	}
}

// icePaths is an http.RoundTripper for a client's POST /webrtc that puts a
// UDP relay of the test's between the client and each of the server's ICE
// candidates: the offer goes without the client's candidates, so the
// server only learns the relays' addresses from their checks, and the
// answer's candidates are rewritten to the relays. Cutting the relays
// breaks the peer connection as a crashed or unreachable server side
// would, with no closing message, while the server itself runs on.
type icePaths struct {
	rt *http.Transport

	mu     sync.Mutex
	relays []*udpRelay
}

func newICEPaths(t *testing.T) *icePaths {
	p := &icePaths{rt: &http.Transport{}}
	t.Cleanup(func() {
		p.rt.CloseIdleConnections()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.relays {
			r.close()
		}
	})
	return p
}

func (p *icePaths) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/webrtc") {
		return p.rt.RoundTrip(req)
	}
	var offer webrtc.SessionDescription
	if err := json.NewDecoder(req.Body).Decode(&offer); err != nil {
		return nil, err
	}
	_ = req.Body.Close()
	offer.SDP = rewriteCandidates(offer.SDP, func(string) string { return "" })
	body, _ := json.Marshal(offer)
	out := req.Clone(req.Context())
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp, err := p.rt.RoundTrip(out)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	var answer webrtc.SessionDescription
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, err
	}
	// A relay knows every server candidate's address: the server also
	// checks pairs from its other candidates, and those datagrams must not
	// pass for the client's.
	server := map[string]bool{}
	relayed := func(line string) *net.UDPAddr {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil
		}
		ip := net.ParseIP(f[4])
		port, err := strconv.Atoi(f[5])
		if !strings.EqualFold(f[2], "udp") || ip == nil || ip.To4() == nil || err != nil {
			return nil
		}
		return &net.UDPAddr{IP: ip, Port: port}
	}
	rewriteCandidates(answer.SDP, func(line string) string {
		if a := relayed(line); a != nil {
			server[a.String()] = true
		}
		return line
	})
	var failed error
	answer.SDP = rewriteCandidates(answer.SDP, func(line string) string {
		a := relayed(line)
		if a == nil {
			return ""
		}
		r, err := newUDPRelay(a, server)
		if err != nil {
			failed = err
			return ""
		}
		p.mu.Lock()
		p.relays = append(p.relays, r)
		p.mu.Unlock()
		f := strings.Fields(line)
		f[5] = strconv.Itoa(r.conn.LocalAddr().(*net.UDPAddr).Port)
		return strings.Join(f, " ")
	})
	if failed != nil {
		return nil, failed
	}
	body, _ = json.Marshal(answer)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// cut drops everything the relays made so far carry from now on, and
// reports how many datagrams they had carried.
func (p *icePaths) cut() (carried int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.relays {
		r.cut.Store(true)
		carried += r.carried.Load()
	}
	return carried
}

// uncut reports how many datagrams the relays made since the last cut
// carried.
func (p *icePaths) uncut() (carried int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.relays {
		if !r.cut.Load() {
			carried += r.carried.Load()
		}
	}
	return carried
}

// rewriteCandidates replaces each "a=candidate:" line of sdp with what
// rewrite returns, dropping the line when that is empty.
func rewriteCandidates(sdp string, rewrite func(line string) string) string {
	lines := strings.Split(sdp, "\r\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") {
			if l = rewrite(l); l == "" {
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// udpRelay forwards datagrams between one server address and whichever
// client last sent to it.
type udpRelay struct {
	conn    *net.UDPConn
	server  *net.UDPAddr
	servers map[string]bool // every server candidate; read only
	cut     atomic.Bool
	carried atomic.Int64
	done    chan struct{}
}

func newUDPRelay(server *net.UDPAddr, servers map[string]bool) (*udpRelay, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: server.IP})
	if err != nil {
		return nil, err
	}
	r := &udpRelay{conn: conn, server: server, servers: servers, done: make(chan struct{})}
	go r.run()
	return r, nil
}

func (r *udpRelay) run() {
	defer close(r.done)
	buf := make([]byte, 1<<16)
	var client *net.UDPAddr
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var to *net.UDPAddr
		switch {
		case r.cut.Load():
		case from.String() == r.server.String():
			to = client
		case r.servers[from.String()]:
			// The server checking a pair from another of its candidates.
		default:
			client, to = from, r.server
		}
		if to == nil {
			continue
		}
		if _, err := r.conn.WriteToUDP(buf[:n], to); err == nil {
			r.carried.Add(1)
		}
	}
}

func (r *udpRelay) close() {
	_ = r.conn.Close()
	<-r.done
}

// TestWebRTCResumeAfterServerSideBreaks: while publications stream to a Go
// client over the server's data channel, the server's side of the peer
// connection goes silent mid-stream. The client notices, opens a new peer
// connection and resumes: recovered, nothing lost, nothing repeated, and
// the live publications after the resume follow the recovered ones.
func TestWebRTCResumeAfterServerSideBreaks(t *testing.T) {
	base := startServer(t, nil)
	paths := newICEPaths(t)
	const channel = "resume:webrtc"
	var reconnects atomic.Int32
	r := newRecordingClient(t, base, client.WebRTC, channel, func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: paths, Timeout: 10 * time.Second}
		c.OnConnecting = func(client.ConnectingEvent) { reconnects.Add(1) }
	})
	// The client takes up to ten seconds to give up on a silent peer
	// connection (its ICE timeouts); at this pace what it misses meanwhile
	// stays well within the channel's history of 1000.
	pub := startPublisher(func() string { return base }, channel, 20*time.Millisecond)
	testkit.WaitFor(t, 20*time.Second, "50 publications before the break", func() bool { return len(r.seqs()) >= 50 })
	before, received := reconnects.Load(), len(r.seqs())
	if carried := paths.cut(); carried == 0 {
		t.Fatal("the peer connection did not go through the test's relays: cutting them breaks nothing")
	}
	resumed := func() bool {
		for _, e := range r.events() {
			if e.subscribed && e.wasRecovering {
				return true
			}
		}
		return false
	}
	testkit.WaitFor(t, 40*time.Second, "the client to notice the break and resume", resumed)
	if reconnects.Load() == before {
		t.Fatal("resumed without reconnecting")
	}
	if paths.uncut() == 0 {
		t.Fatal("the new peer connection bypassed the relays")
	}
	// Live publications follow the recovered ones.
	after := pub.count() + 100
	testkit.WaitFor(t, 20*time.Second, "100 more publications after the resume", func() bool { return pub.count() >= after })
	n := pub.finish(t)
	waitAll(t, map[string]*recordingClient{"webrtc": r}, n)
	for _, e := range r.events() {
		if e.subscribed && e.wasRecovering && !e.recovered {
			t.Fatalf("resume not recovered: %+v", e)
		}
	}
	t.Logf("%d publications, %d of them received before the break; every one received once, in order, the resume recovered", n, received)
}

// A server shutting down while a data-channel client has vanished (its
// network gone: the disconnect notice can never be acknowledged) still
// shuts down cleanly within its ShutdownTimeout: a connection still open
// then is closed without waiting, as the timeout promises.
func TestWebRTCShutdownWithVanishedClient(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = server.EngineMemory
	cfg.Dev = true
	cfg.LogLevel = "error"
	cfg.ShutdownTimeout = 5 * time.Second
	// The fix under test matters only while a peer's WriteTimeout outlasts
	// the shutdown: keep it so whatever the default becomes.
	cfg.WriteTimeout = 30 * time.Second
	srv := servertest.Start(t, cfg)
	paths := newICEPaths(t)
	newRecordingClient(t, srv.URL, client.WebRTC, "vanish:x", func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: paths, Timeout: 10 * time.Second}
	})
	if paths.cut() == 0 {
		t.Fatal("the peer connection did not go through the test's relays")
	}
	began := time.Now()
	err := srv.Stop()
	took := time.Since(began)
	t.Logf("shutdown took %v", took)
	if err != nil {
		t.Fatalf("shutdown with a vanished client: %v", err)
	}
	if took > cfg.ShutdownTimeout+time.Second {
		t.Fatalf("shutdown took %v, ShutdownTimeout is %v", took, cfg.ShutdownTimeout)
	}
}
