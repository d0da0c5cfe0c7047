package redis_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/redis"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

const waitTimeout = 20 * time.Second

// startEngine starts a new engine on url with a new handler, closing it
// when the test ends.
func startEngine(t *testing.T, url string) (*redis.Engine, *enginetest.Recorder) {
	t.Helper()
	e := newEngine(t, url, 0)
	h := enginetest.NewRecorder()
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	if err := e.Start(t.Context(), "node-1", h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e, h
}

func publish(t *testing.T, e engine.Engine, channel string) protocol.StreamPosition {
	t.Helper()
	pos, err := e.Publish(t.Context(), channel, []byte(`{}`), engine.PublishOptions{HistorySize: 10})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return pos
}

// TestRedisRestart: when Redis restarts empty under a subscribed node, the
// engine reconnects and resubscribes by itself, asks the handler to resync,
// and the channel continues in a new epoch; the control bus comes back too.
func TestRedisRestart(t *testing.T) {
	url, r := testkit.StartRedis(t)
	if r == nil {
		t.Skipf("restarts Redis: needs a redis-server of its own, not %s", testkit.RedisEnv)
	}
	e, h := startEngine(t, url)
	const ch, quiet = "test:restart", "test:quiet"
	for _, c := range []string{ch, quiet} {
		if err := e.Subscribe(t.Context(), c); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	before := publish(t, e, ch)
	testkit.WaitFor(t, waitTimeout, "delivery before the restart", func() bool { return h.Delivered(ch, before) })

	r.Kill(t)
	// A subscription cannot be confirmed while Redis is down.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := e.Subscribe(ctx, "test:while-down"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe while Redis is down: %v, want a deadline error", err)
	}
	r.Restart(t)

	// Even the channel nobody publishes to is resynced.
	testkit.WaitFor(t, waitTimeout, "HandleResync for both channels", func() bool {
		return h.Resyncs(ch) == 1 && h.Resyncs(quiet) == 1
	})
	if n := h.Resyncs("test:while-down"); n != 0 {
		t.Fatalf("%d resyncs of the channel whose Subscribe failed", n)
	}
	var after protocol.StreamPosition
	testkit.WaitFor(t, waitTimeout, "a publish to succeed after the restart", func() bool {
		var err error
		after, err = e.Publish(t.Context(), ch, []byte(`{}`), engine.PublishOptions{HistorySize: 10})
		return err == nil
	})
	if after.Epoch == before.Epoch || after.Offset != 1 {
		t.Fatalf("first publish after the restart: %+v; want offset 1 in a new epoch (was %+v)", after, before)
	}
	testkit.WaitFor(t, waitTimeout, "delivery after the restart", func() bool { return h.Delivered(ch, after) })
	hist, err := e.History(t.Context(), ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if hist.Position != after || len(hist.Publications) != 1 {
		t.Fatalf("history after the restart: %d publications at %+v, want 1 at %+v", len(hist.Publications), hist.Position, after)
	}
	testkit.WaitFor(t, waitTimeout, "a control message after the restart", func() bool {
		if err := e.PublishControl(t.Context(), []byte("hello"), ""); err != nil {
			return false
		}
		return slices.Contains(h.Controls(), "hello")
	})
}

// TestFlushAllNewEpoch: history lost to FLUSHALL gives the channel a new
// epoch on the next read or publish, whichever comes first.
func TestFlushAllNewEpoch(t *testing.T) {
	url, r := testkit.StartRedis(t)
	if r == nil {
		t.Skipf("flushes Redis: needs a redis-server of its own, not %s", testkit.RedisEnv)
	}
	e, _ := startEngine(t, url)
	const read, written = "test:flush-read", "test:flush-publish"
	var old [2]protocol.StreamPosition
	for i, ch := range []string{read, written} {
		for range 3 {
			old[i] = publish(t, e, ch)
		}
	}
	r.FlushAll(t)

	res, err := e.History(t.Context(), read, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if res.Position.Epoch == old[0].Epoch || res.Position.Offset != 0 || len(res.Publications) != 0 {
		t.Fatalf("history after FLUSHALL: %d publications at %+v; want none at offset 0 in a new epoch (was %+v)",
			len(res.Publications), res.Position, old[0])
	}
	if pos := publish(t, e, read); pos != (protocol.StreamPosition{Epoch: res.Position.Epoch, Offset: 1}) {
		t.Fatalf("publish after the read: %+v, want offset 1 in the read's epoch %q", pos, res.Position.Epoch)
	}
	if pos := publish(t, e, written); pos.Epoch == old[1].Epoch || pos.Offset != 1 || !protocol.ValidEpoch(pos.Epoch) {
		t.Fatalf("first publish after FLUSHALL: %+v; want offset 1 in a new epoch (was %+v)", pos, old[1])
	}
}

// testSlotMigration: when a subscribed channel's slot moves to another
// node, the engine follows it there, asks the handler to resync, and
// deliveries continue in the same epoch (the keys moved with the slot).
func testSlotMigration(t *testing.T, url string, c *testkit.RedisCluster) {
	e, h := startEngine(t, url)
	const ch = "test:migrating"
	if err := e.Subscribe(t.Context(), ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	before := publish(t, e, ch)
	testkit.WaitFor(t, waitTimeout, "delivery before the move", func() bool { return h.Delivered(ch, before) })

	slot, err := testkit.RedisCommand(c.Nodes[0].Addr, "CLUSTER", "KEYSLOT", ch)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(slot)
	owner := -1
	for i, node := range c.Nodes {
		if keys, _ := testkit.RedisCommand(node.Addr, "CLUSTER", "COUNTKEYSINSLOT", slot); keys != "0" {
			owner = i
		}
	}
	c.MoveSlot(t, n, (owner+1)%len(c.Nodes))

	testkit.WaitFor(t, waitTimeout, "HandleResync after the move", func() bool { return h.Resyncs(ch) == 1 })
	var after protocol.StreamPosition
	testkit.WaitFor(t, waitTimeout, "a publish to succeed after the move", func() bool {
		var err error
		after, err = e.Publish(t.Context(), ch, []byte(`{}`), engine.PublishOptions{HistorySize: 10})
		return err == nil
	})
	if after != (protocol.StreamPosition{Epoch: before.Epoch, Offset: before.Offset + 1}) {
		t.Fatalf("publish after the move: %+v, want the next offset in epoch %q", after, before.Epoch)
	}
	testkit.WaitFor(t, waitTimeout, "delivery after the move", func() bool { return h.Delivered(ch, after) })
}
