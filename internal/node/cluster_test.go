package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// bus links the control buses of memory engines in one process, standing in
// for the broker between nodes; the test/ suite runs real clusters on Redis
// and NATS.
type bus struct {
	mu       sync.Mutex
	handlers map[string]engine.Handler
}

// linkedEngine is a memory engine whose control bus reaches every engine on
// the same bus, and whose publication deliveries a test can drop, as a
// broker outage would.
type linkedEngine struct {
	*memory.Engine
	bus  *bus
	id   string
	drop atomic.Bool
}

func (e *linkedEngine) Start(ctx context.Context, nodeID string, h engine.Handler) error {
	e.id = nodeID
	e.bus.mu.Lock()
	e.bus.handlers[nodeID] = h
	e.bus.mu.Unlock()
	return e.Engine.Start(ctx, nodeID, droppingHandler{h, e})
}

func (e *linkedEngine) Close(ctx context.Context) error {
	e.bus.mu.Lock()
	delete(e.bus.handlers, e.id)
	e.bus.mu.Unlock()
	return e.Engine.Close(ctx)
}

func (e *linkedEngine) PublishControl(_ context.Context, data []byte, toNode string) error {
	e.bus.mu.Lock()
	var targets []engine.Handler
	for id, h := range e.bus.handlers {
		if toNode == "" || id == toNode {
			targets = append(targets, h)
		}
	}
	e.bus.mu.Unlock()
	for _, h := range targets {
		h.HandleControl(append([]byte(nil), data...))
	}
	return nil
}

type droppingHandler struct {
	engine.Handler
	e *linkedEngine
}

func (h droppingHandler) HandlePublication(pub *protocol.Publication, epoch string) {
	if !h.e.drop.Load() {
		h.Handler.HandlePublication(pub, epoch)
	}
}

// newLinkedNodes starts count nodes whose engines share one control bus.
func newLinkedNodes(t *testing.T, count int, cfg Config) ([]*Node, []*linkedEngine) {
	t.Helper()
	b := &bus{handlers: make(map[string]engine.Handler)}
	var nodes []*Node
	var engines []*linkedEngine
	for range count {
		e := &linkedEngine{Engine: memory.New(memory.Config{}), bus: b}
		c := cfg
		c.Engine = e
		if c.NodeHeartbeat == 0 {
			c.NodeHeartbeat = 50 * time.Millisecond
		}
		nodes = append(nodes, newTestNode(t, c))
		engines = append(engines, e)
	}
	return nodes, engines
}

func TestNodesSeeEachOther(t *testing.T) {
	nodes, _ := newLinkedNodes(t, 3, Config{})
	testkit.WaitFor(t, 5*time.Second, "every node lists all three", func() bool {
		for _, n := range nodes {
			if len(n.Nodes()) != 3 {
				return false
			}
		}
		return true
	})
	gone := nodes[2].ID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[2].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the stopped node dropped from the others' view", func() bool {
		for _, n := range nodes[:2] {
			for _, info := range n.Nodes() {
				if info.ID == gone {
					return false
				}
			}
		}
		return true
	})
}

func TestSilentPeerExpires(t *testing.T) {
	nodes, engines := newLinkedNodes(t, 1, Config{})
	ghost, _ := json.Marshal(controlMessage{Type: controlNodeInfo, From: "ghost", Node: &Info{ID: "ghost"}})
	if err := engines[0].PublishControl(context.Background(), ghost, ""); err != nil {
		t.Fatal(err)
	}
	if got := len(nodes[0].Nodes()); got != 2 {
		t.Fatalf("%d nodes right after the ghost's heartbeat, want 2", got)
	}
	testkit.WaitFor(t, 5*time.Second, "ghost expired after three missed heartbeats", func() bool {
		return len(nodes[0].Nodes()) == 1
	})
}

func TestDisconnectUserOnEveryNode(t *testing.T) {
	v := newTokens()
	v.add("alice", Credentials{UserID: "alice"})
	v.add("bob", Credentials{UserID: "bob"})
	nodes, _ := newLinkedNodes(t, 2, Config{Verifier: v})
	aliceA := connectWith(t, nodes[0], "alice", nil)
	aliceB := connectWith(t, nodes[1], "alice", nil)
	bobB := connectWith(t, nodes[1], "bob", nil)
	for _, p := range []*pipe{aliceA, aliceB, bobB} {
		waitReply(t, p, 1)
	}
	if err := nodes[0].Disconnect(context.Background(), ConnectionFilter{User: "alice"}, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pipe{aliceA, aliceB} {
		if d := waitDisconnect(t, p); d != protocol.DisconnectForceNoReconnect {
			t.Fatalf("alice's session closed with %+v", d)
		}
	}
	if d := bobB.disconnect(); d != nil {
		t.Fatalf("bob was disconnected too: %+v", d)
	}
	if err := nodes[1].Disconnect(context.Background(), ConnectionFilter{Client: bobB.s.ID()}, true); err != nil {
		t.Fatal(err)
	}
	if d := waitDisconnect(t, bobB); d != protocol.DisconnectForced {
		t.Fatalf("bob's session closed with %+v, want a reconnect", d)
	}
	if err := nodes[0].Disconnect(context.Background(), ConnectionFilter{}, false); err == nil {
		t.Fatal("a disconnect matching everyone was accepted")
	}
}

func TestConnectionsSurvey(t *testing.T) {
	v := newTokens()
	v.add("alice", Credentials{UserID: "alice"})
	nodes, engines := newLinkedNodes(t, 3, Config{Verifier: v})
	testkit.WaitFor(t, 5*time.Second, "cluster view", func() bool { return len(nodes[0].Nodes()) == 3 })
	a := connectWith(t, nodes[1], "alice", nil)
	b := connectWith(t, nodes[2], "alice", nil)
	waitReply(t, a, 1)
	waitReply(t, b, 1)
	a.s.HandleFrame(context.Background(), command(2, "subscribe", map[string]string{"channel": "room"}))
	waitReply(t, a, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := nodes[0].Connections(ctx, ConnectionFilter{User: "alice"})
	if err != nil || len(res.Missing) != 0 || len(res.Connections) != 2 {
		t.Fatalf("connections %+v, %v", res, err)
	}
	byClient := map[string]ConnectionInfo{}
	for _, c := range res.Connections {
		byClient[c.Client] = c
	}
	if c := byClient[a.s.ID()]; c.Node != nodes[1].ID() || c.User != "alice" || c.Transport != "test" || len(c.Channels) != 1 || c.Channels[0] != "room" {
		t.Fatalf("alice on node 1: %+v", c)
	}
	if c := byClient[b.s.ID()]; c.Node != nodes[2].ID() {
		t.Fatalf("alice on node 2: %+v", c)
	}
	res, err = nodes[0].Connections(ctx, ConnectionFilter{Channel: "room"})
	if err != nil || len(res.Connections) != 1 || res.Connections[0].Client != a.s.ID() {
		t.Fatalf("by channel: %+v, %v", res, err)
	}

	// A node that announces itself but never answers is named, not waited
	// for past the caller's deadline.
	ghost, _ := json.Marshal(controlMessage{Type: controlNodeInfo, From: "ghost", Node: &Info{ID: "ghost"}})
	_ = engines[0].PublishControl(context.Background(), ghost, "")
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	res, err = nodes[0].Connections(short, ConnectionFilter{User: "alice"})
	if err != nil || len(res.Connections) != 2 || len(res.Missing) != 1 || res.Missing[0] != "ghost" {
		t.Fatalf("with a silent node: %+v, %v", res, err)
	}
}

func TestSendToUserReachesPersonalChannel(t *testing.T) {
	v := newTokens()
	v.add("alice", Credentials{UserID: "alice"})
	nodes, _ := newLinkedNodes(t, 1, Config{Verifier: v, PersonalNamespace: "personal"})
	n := nodes[0]
	p := connectWith(t, n, "alice", nil)
	waitReply(t, p, 1)
	testkit.WaitFor(t, 5*time.Second, "server-side subscription to the personal channel", func() bool {
		return len(pushes(p.items(), protocol.PushSubscribed)) == 1
	})
	res, err := n.SendToUser(context.Background(), "alice", json.RawMessage(`{"hello":1}`), false)
	if err != nil || res.Offset != 1 {
		t.Fatalf("send: %+v, %v", res, err)
	}
	testkit.WaitFor(t, 5*time.Second, "publication on personal:#alice", func() bool {
		return len(publicationOffsets(p.items(), "personal:#alice")) == 1
	})
	if _, err := n.SendToUser(context.Background(), "bad user", json.RawMessage(`1`), false); protocol.AsError(err).Code != protocol.ErrBadRequest.Code {
		t.Fatalf("a user id that makes no channel: %v", err)
	}
	off := newTestNode(t, Config{})
	if _, err := off.SendToUser(context.Background(), "alice", json.RawMessage(`1`), false); protocol.AsError(err).Code != protocol.ErrNotAvailable.Code {
		t.Fatalf("personal channels off: %v", err)
	}
}

func TestPersonalNamespaceMustExist(t *testing.T) {
	e := memory.New(memory.Config{})
	defer e.Close(context.Background())
	_, err := New(Config{Engine: e, PersonalNamespace: "personal", Namespaces: []NamespaceOptions{{Name: ""}}})
	if err == nil {
		t.Fatal("a personal namespace that is not configured was accepted")
	}
}

// A delivery lost while the broker was away is noticed at resync, even if
// the channel never publishes again: the subscriber is sent to resume from
// history. Subscribers that missed nothing stay.
func TestResyncFindsLostDelivery(t *testing.T) {
	nodes, engines := newLinkedNodes(t, 1, Config{})
	n := nodes[0]
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.HandleFrame(context.Background(), command(1, "connect", nil))
	p.s.HandleFrame(context.Background(), command(2, "subscribe", map[string]string{"channel": "quiet"}))
	waitReply(t, p, 2)
	publish(t, n, "quiet", 1)
	testkit.WaitFor(t, 5*time.Second, "first publication", func() bool { return len(publicationOffsets(p.items(), "quiet")) == 1 })

	engineHandler{n}.HandleResync("quiet")
	never := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(never) {
		if d := p.disconnect(); d != nil {
			t.Fatalf("resync without a gap disconnected: %+v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}

	engines[0].drop.Store(true)
	publish(t, n, "quiet", 2)
	engineHandler{n}.HandleResync("quiet")
	if d := waitDisconnect(t, p); d != protocol.DisconnectInsufficient {
		t.Fatalf("closed with %+v, want insufficient state", d)
	}
}

// quietTransport is a transport for sessions that only need to exist.
type quietTransport struct{}

func (quietTransport) Name() string { return "test" }
func (quietTransport) Wake()        {}

// A node lists at most MaxListedConnections connections, and about
// maxSurveyConnectionBytes of them, in answer to a survey; the asker's
// result says one was cut short. Only ClusterConnections takes no filter.
func TestClusterConnectionsBounded(t *testing.T) {
	nodes, _ := newLinkedNodes(t, 2, Config{Dev: true, AllowAnonymous: true})
	testkit.WaitFor(t, 5*time.Second, "cluster view", func() bool { return len(nodes[0].Nodes()) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	open := func(count int, channels []string) []*Session {
		var out []*Session
		for range count {
			s, err := nodes[1].NewSession(quietTransport{}, SessionOptions{Authenticated: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Finish)
			if len(channels) > 0 {
				if err := s.SubscribeStream(ctx, channels, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			out = append(out, s)
		}
		return out
	}
	list := func() ConnectionsResult {
		t.Helper()
		res, err := nodes[0].ClusterConnections(ctx, ConnectionFilter{})
		if err != nil || len(res.Missing) != 0 {
			t.Fatalf("connections: %+v, %v", res.Missing, err)
		}
		return res
	}
	if _, err := nodes[0].Connections(ctx, ConnectionFilter{}); protocol.AsError(err).Code != protocol.ErrBadRequest.Code {
		t.Fatalf("Connections without a filter: %v", err)
	}

	many := open(MaxListedConnections, nil)
	if res := list(); res.Truncated || len(res.Connections) != MaxListedConnections {
		t.Fatalf("at the count bound: %d connections, truncated %v", len(res.Connections), res.Truncated)
	}
	many = append(many, open(1, nil)...)
	if res := list(); !res.Truncated || len(res.Connections) != MaxListedConnections {
		t.Fatalf("past the count bound: %d connections, truncated %v", len(res.Connections), res.Truncated)
	}
	for _, s := range many {
		s.Finish()
	}

	// Connections with many long channels reach the byte bound first.
	var long []string
	for i := range 64 {
		long = append(long, fmt.Sprintf("%s%03d", strings.Repeat("c", 200), i))
	}
	perConn := 64 * (203 + 3)
	open(maxSurveyConnectionBytes/perConn+1, protocol.CanonicalChannels(long))
	res := list()
	if !res.Truncated || len(res.Connections) == 0 || len(res.Connections) > maxSurveyConnectionBytes/perConn {
		t.Fatalf("past the byte bound: %d connections, truncated %v", len(res.Connections), res.Truncated)
	}
	if b, _ := json.Marshal(res); len(b) > maxSurveyConnectionBytes {
		t.Fatalf("the listing is %d bytes", len(b))
	}
}

// goBounded runs work on a goroutine holding a slot of its semaphore, and
// drops it while every slot is taken or once the node is stopping.
func TestGoBounded(t *testing.T) {
	n := newTestNode(t, Config{})
	sem := make(chan struct{}, 1)
	release := make(chan struct{})
	ran := make(chan int, 3)
	n.goBounded(sem, func() { <-release; ran <- 1 }, "test")
	n.goBounded(sem, func() { ran <- 2 }, "test") // the one slot is taken
	close(release)
	if got := <-ran; got != 1 {
		t.Fatalf("ran %d, want 1", got)
	}
	testkit.WaitFor(t, 5*time.Second, "the slot released", func() bool { return len(sem) == 0 })
	n.cluster.mu.Lock()
	n.cluster.stopped = true
	n.cluster.mu.Unlock()
	// Work that ran would hold the slot until hold is closed.
	hold := make(chan struct{})
	defer close(hold)
	n.goBounded(sem, func() { <-hold; ran <- 3 }, "test")
	if len(sem) != 0 {
		t.Fatal("work was started after stop")
	}
	if len(ran) != 0 {
		t.Fatalf("dropped work ran: %d", <-ran)
	}
}
