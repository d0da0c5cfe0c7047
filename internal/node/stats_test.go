package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

type recordingObserver struct {
	mu           sync.Mutex
	published    int
	publishErrs  int
	disconnects  []protocol.Disconnect
	transports   []string
	authFailures []uint32
}

func (o *recordingObserver) Published(took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published++
	if err != nil {
		o.publishErrs++
	}
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
