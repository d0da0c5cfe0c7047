package nats_test

import (
	"context"
	"slices"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// waitTimeout bounds this package's condition waits; generous for -race.
const waitTimeout = 20 * time.Second

// start starts e as nodeID with a new handler and closes it when the test ends.
func start(t testing.TB, e *nats.Engine, nodeID string) *enginetest.Recorder {
	t.Helper()
	h := enginetest.NewRecorder()
	if err := e.Start(t.Context(), nodeID, h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return h
}

// TestRestartResyncs restarts the server, with its data, under a subscribed
// engine: the engine reconnects by itself, asks the handler to resync the
// channel, and delivers the next publication in the same epoch without a
// new Subscribe.
func TestRestartResyncs(t *testing.T) {
	srv := testkit.StartNATS(t)
	e := newEngine(t, srv, nats.Config{Options: []natsgo.Option{natsgo.ReconnectWait(20 * time.Millisecond)}})
	h := start(t, e, "node-a")
	ctx := t.Context()
	const ch = "chat:restart.me"
	if err := e.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	first, err := e.Publish(ctx, ch, []byte(`{"n":1}`), engine.PublishOptions{HistorySize: 10})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "the first delivery", func() bool { return len(h.Offsets(ch)) == 1 })

	srv.Restart(t)
	testkit.WaitFor(t, waitTimeout, "a resync after the reconnect", func() bool { return h.Resyncs(ch) > 0 })

	second, err := e.Publish(ctx, ch, []byte(`{"n":2}`), engine.PublishOptions{HistorySize: 10})
	if err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	if second != (protocol.StreamPosition{Epoch: first.Epoch, Offset: 2}) {
		t.Fatalf("publish after restart at %+v, want offset 2 in epoch %q", second, first.Epoch)
	}
	testkit.WaitFor(t, waitTimeout, "delivery after the restart", func() bool { return len(h.Offsets(ch)) == 2 })
	if got := h.Offsets(ch); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("delivered offsets %v, want [1 2]", got)
	}
	res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(res.Publications) != 2 || res.Position != second {
		t.Fatalf("history after restart: %d publications at %+v, want 2 at %+v", len(res.Publications), res.Position, second)
	}
}

// TestLostStreamStartsNewEpoch deletes the history stream under a running
// engine, as an operator wiping history would: the engine creates it again,
// and the channel starts over at offset 1 in a new epoch, delivered to the
// subscribed node with a resync so it notices the break.
func TestLostStreamStartsNewEpoch(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	removeStreamsAfter(t, srv, prefix)
	e := newEngine(t, srv, nats.Config{Prefix: prefix})
	h := start(t, e, "node-a")
	ctx := t.Context()
	const ch = "chat:wiped"
	if err := e.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var old protocol.StreamPosition
	for range 3 {
		var err error
		if old, err = e.Publish(ctx, ch, []byte(`{}`), engine.PublishOptions{HistorySize: 10}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	testkit.WaitFor(t, waitTimeout, "the first deliveries", func() bool { return len(h.Offsets(ch)) == 3 })

	nc, err := natsgo.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, prefix+"_history"); err != nil {
		t.Fatalf("delete the history stream: %v", err)
	}

	var pos protocol.StreamPosition
	testkit.WaitFor(t, waitTimeout, "a publish to succeed again", func() bool {
		pos, err = e.Publish(ctx, ch, []byte(`{"after":"wipe"}`), engine.PublishOptions{HistorySize: 10})
		return err == nil
	})
	if pos.Offset != 1 || pos.Epoch == old.Epoch || !protocol.ValidEpoch(pos.Epoch) {
		t.Fatalf("first publish after the wipe at %+v, want offset 1 in a new epoch (old %q)", pos, old.Epoch)
	}
	testkit.WaitFor(t, waitTimeout, "delivery in the new epoch and a resync", func() bool {
		return len(h.Offsets(ch)) == 4 && h.Resyncs(ch) > 0
	})
	res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(res.Publications) != 1 || res.Position != pos {
		t.Fatalf("history after the wipe: %d publications at %+v, want 1 at %+v", len(res.Publications), res.Position, pos)
	}
}
