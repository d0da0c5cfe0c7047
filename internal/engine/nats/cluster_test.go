package nats_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestTwoEnginesOneChannel runs two engines, as two nodes, on one server:
// publishers on both racing on one channel get every offset 1..n exactly
// once, and both nodes' handlers see all of them in order.
func TestTwoEnginesOneChannel(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	removeStreamsAfter(t, srv, prefix)
	a := newEngine(t, srv, nats.Config{Prefix: prefix})
	b := newEngine(t, srv, nats.Config{Prefix: prefix})
	ha, hb := start(t, a, "node-a"), start(t, b, "node-b")
	ctx := t.Context()
	const ch = "room:shared#1"
	for _, e := range []*nats.Engine{a, b} {
		if err := e.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}

	const publishersPerEngine, publishesEach = 4, 250
	const n = 2 * publishersPerEngine * publishesEach
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		acks []uint64
	)
	for _, e := range []*nats.Engine{a, b} {
		for p := range publishersPerEngine {
			wg.Go(func() {
				for i := range publishesEach {
					pos, err := e.Publish(ctx, ch, fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i), engine.PublishOptions{HistorySize: n})
					if err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
					mu.Lock()
					acks = append(acks, pos.Offset)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	slices.Sort(acks)
	if !slices.Equal(acks, want) {
		t.Fatalf("%d acknowledged offsets are not 1..%d without gap or duplicate", len(acks), n)
	}
	for name, h := range map[string]*enginetest.Recorder{"a": ha, "b": hb} {
		testkit.WaitFor(t, waitTimeout, "every delivery on node "+name, func() bool { return len(h.Offsets(ch)) >= n })
		if got := h.Offsets(ch); !slices.Equal(got, want) {
			t.Fatalf("node %s: %d deliveries, not 1..%d in order", name, len(got), n)
		}
		// Publications the server republished out of order were put back
		// in order, not taken for lost.
		if r := h.Resyncs(ch); r != 0 {
			t.Fatalf("node %s: %d resyncs without a lost delivery", name, r)
		}
	}
	res, err := b.History(ctx, ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(res.Publications) != n || res.Position.Offset != n {
		t.Fatalf("history: %d publications at offset %d, want %d", len(res.Publications), res.Position.Offset, n)
	}

	// The control bus reaches the other node by id, and every node when broadcast.
	if err := a.PublishControl(ctx, []byte("to-b"), "node-b"); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	if err := b.PublishControl(ctx, []byte("to-all"), ""); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	// They come from two connections, so in either order.
	testkit.WaitFor(t, waitTimeout, "control messages", func() bool {
		got := hb.Controls()
		slices.Sort(got)
		return slices.Equal(got, []string{"to-all", "to-b"}) && slices.Equal(ha.Controls(), []string{"to-all"})
	})
}

// TestTwoEnginesOneIdempotencyKey races publishers on two nodes with one
// idempotency key: all get the first publish's position, and the channel
// holds the publication once.
func TestTwoEnginesOneIdempotencyKey(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	removeStreamsAfter(t, srv, prefix)
	a := newEngine(t, srv, nats.Config{Prefix: prefix})
	b := newEngine(t, srv, nats.Config{Prefix: prefix})
	start(t, a, "node-a")
	start(t, b, "node-b")
	ctx := t.Context()
	const ch = "orders:42"
	opts := engine.PublishOptions{HistorySize: 10, IdempotencyKey: "order-42-created"}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		positions []protocol.StreamPosition
	)
	for _, e := range []*nats.Engine{a, b, a, b, a, b} {
		wg.Go(func() {
			pos, err := e.Publish(ctx, ch, []byte(`{"created":true}`), opts)
			if err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
			mu.Lock()
			positions = append(positions, pos)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, p := range positions {
		if p != positions[0] || p.Offset != 1 {
			t.Fatalf("positions %+v, want offset 1 for every publisher", positions)
		}
	}
	res, err := a.History(ctx, ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(res.Publications) != 1 || res.Position != positions[0] {
		t.Fatalf("history: %d publications at %+v, want 1 at %+v", len(res.Publications), res.Position, positions[0])
	}
}
