package durable

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

func openTest(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(context.Background(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// countKeys counts the keys of one kind on disk.
func countKeys(t *testing.T, e *Engine, kind byte) int {
	t.Helper()
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n
}

func mustPublish(t *testing.T, e *Engine, ch string, opts engine.PublishOptions) protocol.StreamPosition {
	t.Helper()
	pos, err := e.Publish(context.Background(), ch, []byte(`{}`), opts)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return pos
}

func TestSweepDeletesExpired(t *testing.T) {
	e := openTest(t)
	expiring := engine.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour}
	for range 5 {
		mustPublish(t, e, "a", expiring)
	}
	// A publication without TTL stops the expired prefix of channel b.
	mustPublish(t, e, "b", expiring)
	mustPublish(t, e, "b", engine.PublishOptions{HistorySize: 100})
	mustPublish(t, e, "b", expiring)
	mustPublish(t, e, "c", engine.PublishOptions{HistorySize: 100, IdempotencyKey: "k", IdempotencyTTL: time.Hour})

	var s sweeper
	if err := e.sweep(&s, time.Now().UnixMilli()); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n := countKeys(t, e, kindPub); n != 9 {
		t.Fatalf("before expiry the sweep left %d publications, want 9", n)
	}

	later := time.Now().Add(2 * time.Hour).UnixMilli()
	if err := e.sweep(&s, later); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n := countKeys(t, e, kindPub); n != 3 { // b@2, b@3 and c@1 remain
		t.Fatalf("after expiry %d publications remain on disk, want 3", n)
	}
	if n := countKeys(t, e, kindIdem); n != 0 {
		t.Fatalf("%d idempotency records remain after expiry, want 0", n)
	}
	res, err := e.History(context.Background(), "a", engine.HistoryQuery{Limit: -1})
	if err != nil || len(res.Publications) != 0 || res.Position.Offset != 5 {
		t.Fatalf("history of swept channel: %d publications at %+v (%v); want none at offset 5",
			len(res.Publications), res.Position, err)
	}
	if pos := mustPublish(t, e, "a", expiring); pos.Offset != 6 {
		t.Fatalf("publish after sweep: offset %d, want 6", pos.Offset)
	}
}

func TestEvictedStateReloads(t *testing.T) {
	e := openTest(t)
	var want protocol.StreamPosition
	for range 5 {
		want = mustPublish(t, e, "a", engine.PublishOptions{HistorySize: 3})
	}
	for i := range e.cache.shards {
		s := &e.cache.shards[i]
		s.mu.Lock()
		for _, st := range s.m {
			st.lastUse.Store(0)
		}
		s.mu.Unlock()
	}
	if err := e.w.doAll(&op{kind: opEvict}); err != nil {
		t.Fatalf("evict: %v", err)
	}
	for i := range e.cache.shards {
		s := &e.cache.shards[i]
		s.mu.Lock()
		n := len(s.m)
		s.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d states still cached after eviction", n)
		}
	}
	res, err := e.History(context.Background(), "a", engine.HistoryQuery{Limit: -1})
	if err != nil || res.Position != want || !slices.Equal(offsets(res.Publications), []uint64{3, 4, 5}) {
		t.Fatalf("history after eviction: %v at %+v (%v); want [3 4 5] at %+v", offsets(res.Publications), res.Position, err, want)
	}
	if pos := mustPublish(t, e, "a", engine.PublishOptions{HistorySize: 3}); pos != (protocol.StreamPosition{Epoch: want.Epoch, Offset: 6}) {
		t.Fatalf("publish after eviction: %+v, want offset 6 in epoch %q", pos, want.Epoch)
	}
}

func offsets(pubs []*protocol.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}
