package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestNode starts a node on a memory engine, in dev mode unless cfg
// lists namespaces and open to anonymous clients unless cfg checks tokens,
// and shuts it down when the test ends.
func newTestNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Engine == nil {
		cfg.Engine = memory.New(memory.Config{})
	}
	if cfg.Verifier == nil {
		cfg.AllowAnonymous = true
	}
	if cfg.Namespaces == nil {
		cfg.Dev = true
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// pipe is a Transport that collects what a session queues, as a real
// transport's writer would, on its own goroutine.
type pipe struct {
	s    *Session
	wake chan struct{}
	mu   sync.Mutex
	got  []Item
	disc *protocol.Disconnect
	done chan struct{}
}

func (p *pipe) Name() string { return "test" }
func (p *pipe) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// openSession creates a session whose queue a goroutine drains into p.got
// until the session is told to disconnect; then it finishes the session.
func openSession(t testing.TB, n *Node, opts SessionOptions) *pipe {
	t.Helper()
	p := &pipe{wake: make(chan struct{}, 1), done: make(chan struct{})}
	s, err := n.NewSession(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.s = s
	go func() {
		defer close(p.done)
		defer s.Finish()
		var buf []Item
		for range p.wake {
			var d *protocol.Disconnect
			buf, d = s.Drain(buf[:0])
			p.mu.Lock()
			p.got = append(p.got, buf...)
			p.disc = d
			p.mu.Unlock()
			if d != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close(protocol.DisconnectForced)
		<-p.done
	})
	return p
}

func (p *pipe) items() []Item {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Item(nil), p.got...)
}

func (p *pipe) disconnect() *protocol.Disconnect {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.disc
}

func command(id uint32, method string, params any) []byte {
	c := map[string]any{"id": id, "method": method}
	if params != nil {
		c["params"] = params
	}
	b, _ := json.Marshal(c)
	return b
}

// replyTo finds the decoded reply with the given id among the items.
func replyTo(items []Item, id uint32) (map[string]json.RawMessage, bool) {
	for _, it := range items {
		var r map[string]json.RawMessage
		if it.Kind != ItemFrame || json.Unmarshal(it.Frame, &r) != nil {
			continue
		}
		if rid, ok := r["id"]; ok && string(rid) == fmt.Sprint(id) {
			return r, true
		}
	}
	return nil, false
}

func publish(t testing.TB, n *Node, channel string, i int) protocol.PublishResult {
	t.Helper()
	res, err := n.Publish(context.Background(), protocol.PublishRequest{Channel: channel, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func publicationOffsets(items []Item, channel string) []uint64 {
	var out []uint64
	for _, it := range items {
		if it.Kind == ItemPublication && it.Channel == channel {
			out = append(out, it.Offset)
		}
	}
	return out
}

// TestSubscribeRecoveryRace hammers the classic race: publishers run while
// sessions subscribe with a recovery position taken at a random moment. Each
// session must see every offset after its position exactly once, in order.
func TestSubscribeRecoveryRace(t *testing.T) {
	n := newTestNode(t, Config{MaxQueueBytes: 64 << 20, Namespaces: []NamespaceOptions{
		{Name: "race", HistorySize: 10000, HistoryTTL: time.Hour, Subscribe: AccessAnyone},
	}})
	const channel = "race:hot"
	const publishers, perPublisher, sessions = 4, 300, 24
	first := publish(t, n, channel, -1)

	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := range perPublisher {
				publish(t, n, channel, p*perPublisher+i)
			}
		}()
	}
	type subscribed struct {
		p     *pipe
		start uint64
	}
	subs := make([]subscribed, sessions)
	var subWG sync.WaitGroup
	for i := range sessions {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			// Resume from a position that is behind the stream by a varying
			// amount, taken while publishers are running.
			hist, err := n.History(context.Background(), protocol.HistoryRequest{Channel: channel, Limit: 1, Reverse: true})
			if err != nil {
				t.Error(err)
				return
			}
			start := hist.Offset - min(hist.Offset-first.Offset, uint64(i*7))
			p := openSession(t, n, SessionOptions{})
			req := protocol.SubscribeRequest{Channel: channel, Recover: true, Epoch: hist.Epoch, Offset: start}
			if err := p.s.subscribe(context.Background(), subscribeOrigin{}, req); err != nil {
				t.Error(err)
				return
			}
			subs[i] = subscribed{p, start}
		}()
	}
	subWG.Wait()
	pubWG.Wait()
	top := first.Offset + publishers*perPublisher
	for i, sub := range subs {
		if sub.p == nil {
			t.Fatalf("session %d did not subscribe", i)
		}
		want := int(top - sub.start)
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("session %d to receive %d publications", i, want), func() bool {
			return len(publicationOffsets(sub.p.items(), channel)) >= want || sub.p.disconnect() != nil
		})
		if d := sub.p.disconnect(); d != nil {
			t.Fatalf("session %d disconnected: %+v", i, d)
		}
		offs := publicationOffsets(sub.p.items(), channel)
		for j, off := range offs {
			if want := sub.start + 1 + uint64(j); off != want {
				t.Fatalf("session %d: offset #%d is %d, want %d (gap or duplicate)", i, j, off, want)
			}
		}
		var sp SubscribedPush
		if err := json.Unmarshal(sub.p.items()[0].Frame, &sp); err != nil || !sp.Recovered {
			t.Fatalf("session %d: subscribed %s, want recovered", i, sub.p.items()[0].Frame)
		}
		if first := sub.p.items()[0]; first.Kind != ItemSubscribed {
			t.Fatalf("session %d: first item kind %d, want subscribed", i, first.Kind)
		}
	}
}

func TestRecoveryOutcomes(t *testing.T) {
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{{Name: "", HistorySize: 5, HistoryTTL: time.Hour, Subscribe: AccessAnyone}}})
	var last protocol.PublishResult
	for i := range 3 {
		last = publish(t, n, "c", i)
	}
	subscribeFrom := func(since *protocol.StreamPosition) (SubscribedPush, []uint64) {
		p := openSession(t, n, SessionOptions{})
		var req = protocol.SubscribeRequest{Channel: "c"}
		if since != nil {
			req.Recover, req.Epoch, req.Offset = true, since.Epoch, since.Offset
		}
		if err := p.s.subscribe(context.Background(), subscribeOrigin{}, req); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "subscribed item", func() bool { return len(p.items()) > 0 })
		var sp SubscribedPush
		if err := json.Unmarshal(p.items()[0].Frame, &sp); err != nil {
			t.Fatal(err)
		}
		return sp, publicationOffsets(p.items(), "c")
	}
	sp, offs := subscribeFrom(&protocol.StreamPosition{Epoch: last.Epoch, Offset: 1})
	if !sp.Recovered || !sp.WasRecovering || len(offs) != 2 || offs[0] != 2 {
		t.Fatalf("recover from 1: %+v offsets %v", sp, offs)
	}
	sp, offs = subscribeFrom(&protocol.StreamPosition{Epoch: last.Epoch, Offset: 3})
	if !sp.Recovered || len(offs) != 0 {
		t.Fatalf("recover from top: %+v offsets %v", sp, offs)
	}
	for _, bad := range []protocol.StreamPosition{{Epoch: "other", Offset: 1}, {Epoch: last.Epoch, Offset: 99}} {
		sp, offs = subscribeFrom(&bad)
		if sp.Recovered || !sp.WasRecovering || len(offs) != 0 || sp.Offset != 3 {
			t.Fatalf("recover from %+v: %+v offsets %v", bad, sp, offs)
		}
	}
	// Push the oldest publications out of the 5-item history: a position
	// before the retained window cannot be recovered.
	for i := range 5 {
		publish(t, n, "c", 10+i)
	}
	sp, offs = subscribeFrom(&protocol.StreamPosition{Epoch: last.Epoch, Offset: 1})
	if sp.Recovered || len(offs) != 0 || sp.Offset != 8 {
		t.Fatalf("recover from expired position: %+v offsets %v", sp, offs)
	}
	sp, _ = subscribeFrom(nil)
	if sp.WasRecovering || sp.Recovered {
		t.Fatalf("plain subscribe: %+v", sp)
	}
}

func TestSlowConsumerIsDisconnectedOthersContinue(t *testing.T) {
	n := newTestNode(t, Config{MaxQueueBytes: 4 << 10})
	stuck := &pipe{wake: make(chan struct{}, 1), done: make(chan struct{})}
	s, err := n.NewSession(stuck, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SubscribeStream(context.Background(), []string{"slow"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	healthy := openSession(t, n, SessionOptions{})
	if err := healthy.s.SubscribeStream(context.Background(), []string{"slow"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Nobody drains stuck: its queue fills while healthy keeps up, in
	// lockstep so the test does not depend on scheduling.
	for i := range 200 {
		publish(t, n, "slow", i)
		testkit.WaitFor(t, 10*time.Second, "healthy to receive", func() bool { return len(publicationOffsets(healthy.items(), "slow")) == i+1 })
	}
	_, d := s.Drain(nil)
	if d == nil || *d != protocol.DisconnectSlowConsumer {
		t.Fatalf("stuck session disconnect = %v, want slow consumer", d)
	}
	s.Finish()
	testkit.WaitFor(t, 10*time.Second, "healthy session to get all 200", func() bool { return len(publicationOffsets(healthy.items(), "slow")) == 200 })
	if healthy.disconnect() != nil {
		t.Fatalf("healthy session disconnected: %+v", healthy.disconnect())
	}
}

func TestBidirectionalCommandsAndHeartbeat(t *testing.T) {
	n := newTestNode(t, Config{PingInterval: 30 * time.Millisecond, PongTimeout: 20 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	ctx := context.Background()
	p.s.HandleFrame(ctx, command(1, "subscribe", map[string]any{"channel": "x"}))
	p.s.HandleFrame(ctx, command(2, "connect", map[string]any{}))
	p.s.HandleFrame(ctx, command(3, "nope", nil))
	p.s.HandleFrame(ctx, command(4, "subscribe", map[string]any{"channel": "bad channel"}))
	p.s.HandleFrame(ctx, command(5, "subscribe", map[string]any{"channel": "x"}))
	p.s.HandleFrame(ctx, command(6, "subscribe", map[string]any{"channel": "x"}))
	p.s.HandleFrame(ctx, command(7, "publish", map[string]any{"channel": "x", "data": map[string]int{"v": 1}}))
	codes := map[uint32]string{1: "115", 3: "104", 4: "112", 6: "105"}
	testkit.WaitFor(t, 10*time.Second, "replies", func() bool { _, ok := replyTo(p.items(), 7); return ok })
	for id, code := range codes {
		r, _ := replyTo(p.items(), id)
		var e protocol.Error
		if err := json.Unmarshal(r["error"], &e); err != nil || fmt.Sprint(e.Code) != code {
			t.Errorf("reply %d = %s, want error %s", id, r["error"], code)
		}
	}
	if r, _ := replyTo(p.items(), 7); r["result"] == nil {
		t.Fatalf("publish reply %v", r)
	}
	testkit.WaitFor(t, 10*time.Second, "the client's own publication", func() bool { return len(publicationOffsets(p.items(), "x")) == 1 })
	// The client never answers pings: the session must end with no pong.
	testkit.WaitFor(t, 10*time.Second, "no-pong disconnect", func() bool { return p.disconnect() != nil })
	if d := p.disconnect(); *d != protocol.DisconnectNoPong {
		t.Fatalf("disconnect = %+v, want no pong", d)
	}
}

func TestMalformedFrameClosesSession(t *testing.T) {
	n := newTestNode(t, Config{})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.HandleFrame(context.Background(), []byte("{not json"))
	testkit.WaitFor(t, 10*time.Second, "disconnect", func() bool { return p.disconnect() != nil })
	if d := p.disconnect(); d.Code != protocol.DisconnectBadRequest.Code {
		t.Fatalf("disconnect = %+v", d)
	}
}

func TestConnectTimeout(t *testing.T) {
	n := newTestNode(t, Config{ConnectTimeout: 20 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	testkit.WaitFor(t, 10*time.Second, "connect timeout", func() bool { return p.disconnect() != nil })
	if d := p.disconnect(); d.Code != protocol.DisconnectBadRequest.Code || d.Reason != "connect timeout" {
		t.Fatalf("disconnect = %+v", d)
	}
}

func TestPresenceAndJoinLeave(t *testing.T) {
	n := newTestNode(t, Config{})
	watcher := openSession(t, n, SessionOptions{})
	if err := watcher.s.SubscribeStream(context.Background(), []string{"room:1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	other := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "bob"}})
	if err := other.s.SubscribeStream(context.Background(), []string{"room:1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	p, err := n.Presence(context.Background(), "room:1")
	if err != nil || len(p) != 2 || p[other.s.ID()].User != "bob" {
		t.Fatalf("presence = %v, %v", p, err)
	}
	pushes := func(kind string) int {
		c := 0
		for _, it := range watcher.items() {
			if it.Push == kind {
				c++
			}
		}
		return c
	}
	testkit.WaitFor(t, 10*time.Second, "bob's join", func() bool { return pushes(protocol.PushJoin) == 2 })
	other.s.Close(protocol.DisconnectForced)
	<-other.done
	testkit.WaitFor(t, 10*time.Second, "bob's leave", func() bool { return pushes(protocol.PushLeave) == 1 })
	p, _ = n.Presence(context.Background(), "room:1")
	if len(p) != 1 {
		t.Fatalf("presence after leave = %v", p)
	}
}

func TestShutdownTellsSessionsToReconnect(t *testing.T) {
	n, err := New(Config{Engine: memory.New(memory.Config{}), Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := openSession(t, n, SessionOptions{})
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := p.disconnect(); d == nil || *d != protocol.DisconnectShutdown {
		t.Fatalf("disconnect = %v", d)
	}
	if _, err := n.NewSession(&pipe{}, SessionOptions{}); err != protocol.ErrShuttingDown {
		t.Fatalf("NewSession after shutdown: %v", err)
	}
}

func TestNamespacesAreClosedByDefault(t *testing.T) {
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{{Name: "", HistorySize: 10, HistoryTTL: time.Minute}}})
	p := openSession(t, n, SessionOptions{})
	err := p.s.SubscribeStream(context.Background(), []string{"a"}, nil, nil)
	if pe := protocol.AsError(err); pe.Code != protocol.ErrPermissionDenied.Code {
		t.Fatalf("anonymous subscribe: %v", err)
	}
	err = p.s.SubscribeStream(context.Background(), []string{"other:a"}, nil, nil)
	if pe := protocol.AsError(err); pe.Code != protocol.ErrUnknownChannel.Code {
		t.Fatalf("unknown namespace: %v", err)
	}
}

func TestPollLongAndShort(t *testing.T) {
	n := newTestNode(t, Config{})
	ctx := context.Background()
	res, err := n.Poll(ctx, Credentials{}, PollRequest{Channels: []string{"p:b", "p:a"}})
	if err != nil || len(res.Publications) != 0 || !res.Recovered {
		t.Fatalf("first poll: %+v, %v", res, err)
	}
	publish(t, n, "p:a", 1)
	publish(t, n, "p:b", 2)
	res2, err := n.Poll(ctx, Credentials{}, PollRequest{Channels: []string{"p:a", "p:b"}, Since: res.Next})
	if err != nil || len(res2.Publications) != 2 {
		t.Fatalf("second poll: %+v, %v", res2, err)
	}
	got := make(chan *PollResult, 1)
	go func() {
		r, err := n.Poll(ctx, Credentials{}, PollRequest{Channels: []string{"p:a", "p:b"}, Since: res2.Next, Timeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	testkit.WaitFor(t, 10*time.Second, "the long poll to wait", func() bool { return n.Channels()["p:a"] == 1 })
	publish(t, n, "p:b", 3)
	r := <-got
	if len(r.Publications) != 1 || r.Publications[0].Channel != "p:b" {
		t.Fatalf("long poll: %+v", r)
	}
	testkit.WaitFor(t, 10*time.Second, "the waiter to leave the hub", func() bool { return len(n.Channels()) == 0 })
}

// BenchmarkHubFanout10k measures fanning one publication out to 10,000
// in-process subscribers: one encode, then one enqueue per subscriber with
// no allocation per subscriber.
func BenchmarkHubFanout10k(b *testing.B) {
	n := newTestNode(b, Config{MaxQueueBytes: 64 << 20, Namespaces: []NamespaceOptions{
		{Name: "", HistorySize: 100, HistoryTTL: time.Minute, Subscribe: AccessAnyone},
	}})
	const subscribers = 10000
	sessions := make([]*Session, subscribers)
	for i := range sessions {
		s, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.SubscribeStream(context.Background(), []string{"fan"}, nil, nil); err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	b.Cleanup(func() {
		for _, s := range sessions {
			s.Finish()
		}
	})
	pub := &protocol.Publication{Channel: "fan", Data: json.RawMessage(`{"price":101.25,"sym":"HRLD"}`), Time: 1}
	var sink []Item
	drainAll := func() {
		for _, s := range sessions {
			sink, _ = s.Drain(sink[:0])
		}
	}
	drainAll()
	epoch := sessions[0].subs.get("fan").epoch
	offset := sessions[0].subs.get("fan").offset
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		offset++
		pub.Offset = offset
		n.hub.publish(pub, epoch)
		// Writers drain between bursts, as transports do; keeping bursts
		// short keeps each queue's ring small and reused.
		if i%32 == 31 {
			b.StopTimer()
			drainAll()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
}

// A resume whose backlog is many times the queue (as after a slow-consumer
// disconnect) recovers all of it, page by page as the client reads, while a
// publisher goes on: every offset arrives once, in order, then live ones.
func TestResumeLargerThanQueueIsPaged(t *testing.T) {
	big := DevNamespace("big")
	big.HistorySize = 5000
	// The queue holds every live publication below even if the draining
	// goroutine gets no CPU while they are made: only the backlog must page.
	n := newTestNode(t, Config{MaxQueueBytes: 512 << 10, Dev: true, Namespaces: []NamespaceOptions{big}})
	ctx := context.Background()
	const ch = "big:backlog"
	first := publish(t, n, ch, 0)
	blob := json.RawMessage(`{"blob":"` + strings.Repeat("x", 1<<10) + `"}`)
	// 2,400 KiB of backlog: ten fills of half the queue, and five pages.
	for range 2400 {
		if _, err := n.Publish(ctx, protocol.PublishRequest{Channel: ch, Data: blob}); err != nil {
			t.Fatal(err)
		}
	}
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{ch}, []protocol.StreamPosition{{Epoch: first.Epoch, Offset: first.Offset}}, nil); err != nil {
		t.Fatal(err)
	}
	var top protocol.PublishResult
	for range 200 {
		res, err := n.Publish(ctx, protocol.PublishRequest{Channel: ch, Data: blob})
		if err != nil {
			t.Fatal(err)
		}
		top = res
	}
	testkit.WaitFor(t, 20*time.Second, "every publication", func() bool {
		offs := publicationOffsets(p.items(), ch)
		return p.disconnect() != nil || len(offs) > 0 && offs[len(offs)-1] >= top.Offset
	})
	if d := p.disconnect(); d != nil {
		t.Fatalf("disconnected while catching up: %+v", d)
	}
	var sp SubscribedPush
	if err := json.Unmarshal(p.items()[0].Frame, &sp); err != nil {
		t.Fatal(err)
	}
	if !sp.Recovered || !sp.WasRecovering {
		t.Fatalf("subscribed %+v, want recovered", sp)
	}
	offs := publicationOffsets(p.items(), ch)
	for i, off := range offs {
		if off != first.Offset+1+uint64(i) {
			t.Fatalf("offset %d at %d: lost or repeated (%d received, newest %d)", off, i, len(offs), top.Offset)
		}
	}
	live := publish(t, n, ch, -1)
	testkit.WaitFor(t, 10*time.Second, "a live publication after the catch-up", func() bool {
		offs := publicationOffsets(p.items(), ch)
		return offs[len(offs)-1] == live.Offset
	})
	p.s.mu.Lock()
	catching := p.s.catchingUp
	p.s.mu.Unlock()
	if catching != 0 {
		t.Fatalf("%d subscriptions still catching up after the live publication", catching)
	}
}

// A backlog over MaxRecoveredPublications is not replayed: the client is
// told recovered=false and goes on live.
func TestResumeBeyondMaxRecoveredIsNotRecovered(t *testing.T) {
	n := newTestNode(t, Config{MaxRecoveredPublications: 10})
	first := publish(t, n, "far", 0)
	for i := range 11 {
		publish(t, n, "far", i+1)
	}
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(context.Background(), []string{"far"}, []protocol.StreamPosition{{Epoch: first.Epoch, Offset: first.Offset}}, nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "subscribed", func() bool { return len(p.items()) > 0 })
	var sp SubscribedPush
	if err := json.Unmarshal(p.items()[0].Frame, &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Recovered || !sp.WasRecovering || p.disconnect() != nil {
		t.Fatalf("subscribed %+v, disconnect %+v; want recovered=false and no disconnect", sp, p.disconnect())
	}
	live := publish(t, n, "far", -1)
	testkit.WaitFor(t, 10*time.Second, "the live publication", func() bool {
		offs := publicationOffsets(p.items(), "far")
		return len(offs) == 1 && offs[0] == live.Offset
	})
}

func TestPollResponseIsBoundedInBytes(t *testing.T) {
	n := newTestNode(t, Config{MaxQueueBytes: 64 << 10})
	start, err := n.Poll(context.Background(), Credentials{}, PollRequest{Channels: []string{"pb"}})
	if err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 8<<10) + `"}`)
	for range 20 {
		if _, err := n.Publish(context.Background(), protocol.PublishRequest{Channel: "pb", Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	since, got := start.Next, 0
	for got < 20 {
		res, err := n.Poll(context.Background(), Credentials{}, PollRequest{Channels: []string{"pb"}, Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Publications) == 0 || len(res.Publications) > 9 {
			t.Fatalf("poll returned %d publications of 8 KiB with a 64 KiB budget", len(res.Publications))
		}
		got += len(res.Publications)
		since = res.Next
	}
}

func TestPublishValidation(t *testing.T) {
	n := newTestNode(t, Config{MaxPublicationSize: 1024})
	manyTags := map[string]string{}
	for i := range MaxTags + 1 {
		manyTags[fmt.Sprint(i)] = "v"
	}
	for name, tc := range map[string]struct {
		req  protocol.PublishRequest
		code uint32
	}{
		"invalid channel": {protocol.PublishRequest{Channel: "a b", Data: json.RawMessage(`1`)}, protocol.ErrInvalidChannel.Code},
		"invalid json":    {protocol.PublishRequest{Channel: "a", Data: json.RawMessage(`{`)}, protocol.ErrBadRequest.Code},
		"no data":         {protocol.PublishRequest{Channel: "a"}, protocol.ErrBadRequest.Code},
		"too large":       {protocol.PublishRequest{Channel: "a", Data: json.RawMessage(`"` + strings.Repeat("x", 1024) + `"`)}, protocol.ErrMessageTooLarge.Code},
		"too many tags":   {protocol.PublishRequest{Channel: "a", Data: json.RawMessage(`1`), Tags: manyTags}, protocol.ErrLimitExceeded.Code},
		"tags too large":  {protocol.PublishRequest{Channel: "a", Data: json.RawMessage(`1`), Tags: map[string]string{"k": strings.Repeat("v", MaxTagBytes)}}, protocol.ErrLimitExceeded.Code},
		"long idem key":   {protocol.PublishRequest{Channel: "a", Data: json.RawMessage(`1`), IdempotencyKey: strings.Repeat("k", 129)}, protocol.ErrBadRequest.Code},
	} {
		_, err := n.Publish(context.Background(), tc.req)
		if got := protocol.AsError(err); err == nil || got.Code != tc.code {
			t.Errorf("%s: error %v, want code %d", name, err, tc.code)
		}
	}
}

func TestConfigRejectsPongTimeoutNotShorterThanPing(t *testing.T) {
	e := memory.New(memory.Config{})
	defer e.Close(context.Background())
	_, err := New(Config{Engine: e, PingInterval: time.Second, PongTimeout: time.Second})
	if err == nil {
		t.Fatal("pong timeout equal to the ping interval accepted")
	}
}

// A client that answers every ping stays connected across many intervals.
func TestAnsweredPingsKeepSessionAlive(t *testing.T) {
	// The pong deadline leaves room for the condition poll's backoff.
	n := newTestNode(t, Config{PingInterval: 250 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.HandleFrame(context.Background(), command(1, "connect", nil))
	pings := func() int {
		c := 0
		for _, it := range p.items() {
			if it.Push == protocol.PushPing {
				c++
			}
		}
		return c
	}
	for answered := 0; answered < 5; answered++ {
		testkit.WaitFor(t, 10*time.Second, "a ping", func() bool { return pings() > answered || p.disconnect() != nil })
		if d := p.disconnect(); d != nil {
			t.Fatalf("disconnected after %d answered pings: %+v", answered, d)
		}
		p.s.HandleFrame(context.Background(), []byte(`{"method":"pong"}`))
	}
}

func TestHistoryReplyIsBoundedInBytes(t *testing.T) {
	n := newTestNode(t, Config{MaxQueueBytes: 64 << 10})
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 8<<10) + `"}`)
	for range 20 {
		if _, err := n.Publish(context.Background(), protocol.PublishRequest{Channel: "hb", Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	var since *protocol.StreamPosition
	got := 0
	for got < 20 {
		res, err := n.History(context.Background(), protocol.HistoryRequest{Channel: "hb", Since: since, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Publications) == 0 || len(res.Publications) > 5 {
			t.Fatalf("history page of %d publications of 8 KiB with a 32 KiB budget", len(res.Publications))
		}
		got += len(res.Publications)
		since = &protocol.StreamPosition{Epoch: res.Epoch, Offset: res.Publications[len(res.Publications)-1].Offset}
	}
}

// Fan-out must not allocate per subscriber: one publication to 1,000
// subscribers costs the same few allocations (its encoded frame) as to one.
func TestFanoutAllocatesNothingPerSubscriber(t *testing.T) {
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{
		{Name: "", HistorySize: 100, HistoryTTL: time.Minute, Subscribe: AccessAnyone},
	}})
	sessions := make([]*Session, 1000)
	for i := range sessions {
		s, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Finish()
		if err := s.SubscribeStream(context.Background(), []string{"alloc"}, nil, nil); err != nil {
			t.Fatal(err)
		}
		sessions[i] = s
	}
	sub := sessions[0].subs.get("alloc")
	pub := &protocol.Publication{Channel: "alloc", Data: json.RawMessage(`{"v":1}`), Offset: sub.offset}
	var sink []Item
	publishAndDrain := func() {
		pub.Offset++
		n.hub.publish(pub, sub.epoch)
		for _, s := range sessions {
			sink, _ = s.Drain(sink[:0])
		}
	}
	publishAndDrain() // warm every queue's ring
	if allocs := testing.AllocsPerRun(50, publishAndDrain); allocs > 3 {
		t.Fatalf("%.0f allocations per publication to %d subscribers", allocs, len(sessions))
	}
}

// An idle session holds no queue memory once a ping has gone out and its
// pong come back.
func TestIdleSessionReleasesQueue(t *testing.T) {
	n := newTestNode(t, Config{PingInterval: 250 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	ctx := context.Background()
	p.s.HandleFrame(ctx, command(1, "connect", nil))
	p.s.HandleFrame(ctx, command(2, "subscribe", map[string]any{"channel": "idle"}))
	publish(t, n, "idle", 1)
	testkit.WaitFor(t, 10*time.Second, "the publication", func() bool { return len(publicationOffsets(p.items(), "idle")) == 1 })
	ringHeld := func() bool {
		p.s.mu.Lock()
		defer p.s.mu.Unlock()
		return p.s.out.items != nil
	}
	if !ringHeld() {
		t.Fatal("no queue ring right after a delivery: the test would prove nothing")
	}
	testkit.WaitFor(t, 10*time.Second, "the ring to be released", func() bool {
		p.s.HandleFrame(ctx, []byte(`{"method":"pong"}`))
		return !ringHeld() || p.disconnect() != nil
	})
	if d := p.disconnect(); d != nil {
		t.Fatalf("disconnected before the ring was released: %+v", d)
	}
}

// The heartbeat of an idle session holds no queue memory: the ping is not a
// queued item, and the ring the connect and subscribe replies used is given
// back when the ping goes out, not a pong timeout later.
func TestPingNeedsNoQueue(t *testing.T) {
	n := newTestNode(t, Config{PingInterval: 300 * time.Millisecond, PongTimeout: 250 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	ctx := context.Background()
	p.s.HandleFrame(ctx, command(1, "connect", nil))
	p.s.HandleFrame(ctx, command(2, "subscribe", map[string]any{"channel": "idle"}))
	pings := func() int {
		count := 0
		for _, it := range p.items() {
			if it.Push == protocol.PushPing {
				count++
			}
		}
		return count
	}
	for round := 1; round <= 2; round++ {
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("ping %d", round), func() bool { return pings() == round })
		p.s.mu.Lock()
		held := p.s.out.items != nil
		p.s.mu.Unlock()
		if held {
			t.Fatalf("ping %d: the session holds a queue ring while idle", round)
		}
		p.s.HandleFrame(ctx, []byte(`{"method":"pong"}`))
	}
	if d := p.disconnect(); d != nil {
		t.Fatalf("disconnected: %+v", d)
	}
}

// A client whose info is not valid JSON cannot break fan-out: its join and
// leave events are dropped, everything else still flows, nothing panics.
func TestInvalidClientInfoDropsOnlyItsPresenceEvents(t *testing.T) {
	n := newTestNode(t, Config{})
	watcher := openSession(t, n, SessionOptions{})
	if err := watcher.s.SubscribeStream(context.Background(), []string{"room:bad"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	bad := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "u", Info: json.RawMessage(`{not json`)}})
	if err := bad.s.SubscribeStream(context.Background(), []string{"room:bad"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, n, "room:bad", 1)
	testkit.WaitFor(t, 10*time.Second, "the publication", func() bool {
		return len(publicationOffsets(watcher.items(), "room:bad")) == 1 && len(publicationOffsets(bad.items(), "room:bad")) == 1
	})
	joins := 0
	for _, it := range watcher.items() {
		if it.Push == protocol.PushJoin {
			joins++
		}
	}
	if joins != 1 {
		t.Fatalf("watcher got %d joins, want only its own", joins)
	}
}
