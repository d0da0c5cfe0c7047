package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

type recordingObserver struct {
	mu           sync.Mutex
	published    int
	publishErrs  int
	engineCalls  map[string]int
	engineErrs   map[string]int
	fanouts      int
	flushes      []flushed
	received     int
	dropped      map[string]int
	disconnects  []protocol.Disconnect
	transports   []string
	authFailures []uint32
}

type flushed struct {
	frames  int
	latency time.Duration
}

func (o *recordingObserver) EngineCall(op string, took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.engineCalls == nil {
		o.engineCalls, o.engineErrs = make(map[string]int), make(map[string]int)
	}
	o.engineCalls[op]++
	if err != nil {
		o.engineErrs[op]++
	}
	if op == "publish" {
		o.published++
		if err != nil {
			o.publishErrs++
		}
	}
}

func (o *recordingObserver) FannedOut(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fanouts++
}

func (o *recordingObserver) Flushed(_ string, frames int, latency time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushes = append(o.flushes, flushed{frames, latency})
}

func (o *recordingObserver) Received(string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.received++
}

func (o *recordingObserver) Dropped(_, reason string, frames int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped == nil {
		o.dropped = make(map[string]int)
	}
	o.dropped[reason] += frames
}

func (o *recordingObserver) Disconnected(transport string, d protocol.Disconnect) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.transports = append(o.transports, transport)
	o.disconnects = append(o.disconnects, d)
}

func (o *recordingObserver) AuthFailed(code uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.authFailures = append(o.authFailures, code)
}

// Stats count sessions by transport, channels and their subscribers, and
// publications in and copies out; the observer hears of every publish,
// server-side disconnect and refusal.
func TestStatsAndObserver(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs})
	ctx := context.Background()
	a, b := openSession(t, n, SessionOptions{}), openSession(t, n, SessionOptions{})
	for _, p := range []*pipe{a, b} {
		if err := p.s.SubscribeStream(ctx, []string{"stats:a"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.s.SubscribeStream(ctx, []string{"stats:b"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, n, "stats:b", 0)
	for i := range 3 {
		publish(t, n, "stats:a", i)
	}
	testkit.WaitFor(t, 10*time.Second, "deliveries", func() bool {
		return len(publicationOffsets(a.items(), "stats:a")) == 3 && len(publicationOffsets(b.items(), "stats:a")) == 3
	})
	st := n.Stats()
	if st.Connections["test"] != 2 || len(st.Connections) != 1 {
		t.Fatalf("connections %v, want 2 on test", st.Connections)
	}
	if st.Channels != 2 || st.Subscriptions != 3 {
		t.Fatalf("%d channels with %d subscriptions, want 2 and 3", st.Channels, st.Subscriptions)
	}
	if st.Publications != 4 || st.Deliveries != 7 {
		t.Fatalf("%d publications in, %d copies out; want 4 and 7", st.Publications, st.Deliveries)
	}

	b.s.Close(protocol.DisconnectSlowConsumer)
	<-b.done
	testkit.WaitFor(t, 10*time.Second, "the closed session to leave the counts", func() bool {
		return n.Stats().Connections["test"] == 1
	})
	if _, err := n.Publish(ctx, protocol.PublishRequest{Channel: "stats:a", Data: []byte(`{`)}); err == nil {
		t.Fatal("invalid JSON published")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.published != 4 || obs.publishErrs != 0 {
		t.Fatalf("observer saw %d publishes (%d failed), want 4 (rejected data never reaches the engine)", obs.published, obs.publishErrs)
	}
	if len(obs.disconnects) != 1 || obs.disconnects[0] != protocol.DisconnectSlowConsumer || obs.transports[0] != "test" {
		t.Fatalf("observer saw disconnects %v on %v, want one slow consumer on test", obs.disconnects, obs.transports)
	}
}

// Refused tokens and permissions reach the observer with their codes.
func TestObserverHearsRefusals(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs, Namespaces: []NamespaceOptions{{Name: "", HistorySize: 10, HistoryTTL: time.Minute}}})
	p := openSession(t, n, SessionOptions{})
	err := p.s.SubscribeStream(context.Background(), []string{"a"}, nil, nil)
	if !errors.Is(err, protocol.ErrPermissionDenied) && protocol.AsError(err).Code != protocol.ErrPermissionDenied.Code {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := n.Authenticate(context.Background(), "not-a-token"); err == nil {
		t.Fatal("a node without a verifier accepted a token")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []uint32{protocol.ErrPermissionDenied.Code, protocol.ErrUnauthorized.Code}
	if len(obs.authFailures) != 2 || obs.authFailures[0] != want[0] || obs.authFailures[1] != want[1] {
		t.Fatalf("observer saw refusals %v, want %v", obs.authFailures, want)
	}
}

// The hub reports one fan-out per publication that has local subscribers,
// however many they are, and none for a channel nobody follows here.
func TestObserverHearsFanouts(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs})
	ctx := context.Background()
	a, b := openSession(t, n, SessionOptions{}), openSession(t, n, SessionOptions{})
	for _, p := range []*pipe{a, b} {
		if err := p.s.SubscribeStream(ctx, []string{"fan:a"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, n, "fan:nobody", 0)
	for i := range 3 {
		publish(t, n, "fan:a", i)
	}
	testkit.WaitFor(t, 10*time.Second, "deliveries", func() bool {
		return len(publicationOffsets(a.items(), "fan:a")) == 3 && len(publicationOffsets(b.items(), "fan:a")) == 3
	})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.fanouts != 3 {
		t.Fatalf("%d fan-outs reported, want 3 (one per publication to fan:a)", obs.fanouts)
	}
}

// A sample of the channels with local subscribers reports how many
// publications each one's history keeps, skipping namespaces without
// history, and never more channels than asked for.
func TestSampleHistory(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs, Namespaces: []NamespaceOptions{
		{Name: "kept", HistorySize: 3, HistoryTTL: time.Minute, Subscribe: AccessAnyone},
		{Name: "none", Subscribe: AccessAnyone},
	}})
	ctx := context.Background()
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{"kept:a", "kept:b", "none:c"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, n, "kept:a", i)
	}
	publish(t, n, "kept:b", 0)
	obs.mu.Lock()
	historyCalls := obs.engineCalls["history"]
	obs.mu.Unlock()
	got := map[string]int{}
	samples := n.SampleHistory(ctx, 10)
	for _, s := range samples {
		if s.Namespace != "kept" {
			t.Fatalf("sampled namespace %q, which keeps no history", s.Namespace)
		}
		got[fmt.Sprint(s.Publications)]++
	}
	// kept:a holds its last 3 of 5, kept:b its only one.
	if len(samples) != 2 || got["3"] != 1 || got["1"] != 1 {
		t.Fatalf("samples %+v, want one channel keeping 3 and one keeping 1", samples)
	}
	if s := n.SampleHistory(ctx, 1); len(s) != 1 {
		t.Fatalf("asked for 1 channel, got %d samples", len(s))
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.engineCalls["history"] != historyCalls {
		t.Fatalf("sampling reported %d history calls as client traffic", obs.engineCalls["history"]-historyCalls)
	}
}

// countingObserver is the cheapest Observer that still does something
// with each event, for measuring what the node's side of reporting costs.
type countingObserver struct{ events atomic.Uint64 }

func (o *countingObserver) EngineCall(string, time.Duration, error)  { o.events.Add(1) }
func (o *countingObserver) FannedOut(time.Duration)                  { o.events.Add(1) }
func (o *countingObserver) Flushed(string, int, time.Duration)       { o.events.Add(1) }
func (o *countingObserver) Received(string)                          { o.events.Add(1) }
func (o *countingObserver) Dropped(string, string, int)              { o.events.Add(1) }
func (o *countingObserver) Disconnected(string, protocol.Disconnect) { o.events.Add(1) }
func (o *countingObserver) AuthFailed(uint32)                        { o.events.Add(1) }

// BenchmarkHubFanoutObserved compares fan-out with and without an
// Observer, to one subscriber (where the fan-out's own clock reads weigh
// most) and to 1,000.
func BenchmarkHubFanoutObserved(b *testing.B) {
	for _, subscribers := range []int{1, 1000} {
		for _, observed := range []bool{false, true} {
			b.Run(fmt.Sprintf("subscribers=%d/observed=%v", subscribers, observed), func(b *testing.B) {
				cfg := Config{Namespaces: []NamespaceOptions{{Name: "", HistorySize: 100, HistoryTTL: time.Minute, Subscribe: AccessAnyone}}}
				if observed {
					cfg.Observer = &countingObserver{}
				}
				n := newTestNode(b, cfg)
				sessions := make([]*Session, subscribers)
				for i := range sessions {
					s, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(s.Finish)
					if err := s.SubscribeStream(context.Background(), []string{"fan"}, nil, nil); err != nil {
						b.Fatal(err)
					}
					sessions[i] = s
				}
				var sink []Item
				drainAll := func() {
					for _, s := range sessions {
						sink, _ = s.Drain(sink[:0])
					}
				}
				drainAll()
				sub := sessions[0].subs.get("fan")
				pub := &protocol.Publication{Channel: "fan", Data: []byte(`{"v":1}`), Time: 1, Offset: sub.offset}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					pub.Offset++
					n.hub.publish(pub, sub.epoch)
					if i%32 == 31 {
						b.StopTimer()
						drainAll()
						b.StartTimer()
					}
				}
			})
		}
	}
}
