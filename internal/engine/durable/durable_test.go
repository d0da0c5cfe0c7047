package durable_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/durable"
	"github.com/heraldrt/herald/internal/engine/enginetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, cfg durable.Config) *durable.Engine {
	t.Helper()
	e, err := durable.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return e
}

func TestConformance(t *testing.T) {
	const presenceTTL = 300 * time.Millisecond
	enginetest.Run(t,
		func(t *testing.T) engine.Engine { return open(t, durable.Config{Dir: t.TempDir()}) },
		enginetest.PresenceExpiry(presenceTTL, func(t *testing.T) engine.Engine {
			return open(t, durable.Config{Dir: t.TempDir(), PresenceTTL: presenceTTL})
		}),
		enginetest.Persistent(func(t *testing.T, dir string) engine.Engine {
			return open(t, durable.Config{Dir: dir})
		}),
	)
}

// TestReopenContinues publishes enough to exercise retention and removal,
// closes the engine and reopens the directory: history, epochs and offsets
// must carry on where they stopped.
func TestReopenContinues(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	channels := []string{"chat:a", "chat:b", "chat:c"}
	e := open(t, durable.Config{Dir: dir})
	before := map[string]engine.HistoryResult{}
	for i := range 900 {
		ch := channels[i%len(channels)]
		if _, err := e.Publish(ctx, ch, fmt.Appendf(nil, `{"i":%d}`, i), engine.PublishOptions{HistorySize: 100}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if err := e.RemoveHistory(ctx, "chat:c"); err != nil {
		t.Fatalf("RemoveHistory: %v", err)
	}
	for _, ch := range channels {
		res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		before[ch] = res
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	e = open(t, durable.Config{Dir: dir})
	defer e.Close(ctx)
	for _, ch := range channels {
		res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		want := before[ch]
		if res.Position != want.Position || len(res.Publications) != len(want.Publications) {
			t.Fatalf("%s after reopen: %d publications at %+v, was %d at %+v",
				ch, len(res.Publications), res.Position, len(want.Publications), want.Position)
		}
		for i, p := range res.Publications {
			if w := want.Publications[i]; p.Offset != w.Offset || string(p.Data) != string(w.Data) || p.Time != w.Time {
				t.Fatalf("%s after reopen: publication %d is %+v, was %+v", ch, i, p, w)
			}
		}
		pos, err := e.Publish(ctx, ch, []byte(`{}`), engine.PublishOptions{HistorySize: 100})
		if err != nil || pos.Epoch != want.Position.Epoch || pos.Offset != want.Position.Offset+1 {
			t.Fatalf("%s: publish after reopen at %+v (%v), want offset %d in epoch %q",
				ch, pos, err, want.Position.Offset+1, want.Position.Epoch)
		}
	}
}

// A second Open of a store in use fails cleanly: no goroutine is left
// behind (the suite's leak check runs after this test too) and the first
// engine keeps working.
func TestOpenLockedStoreFails(t *testing.T) {
	dir := t.TempDir()
	first, err := durable.Open(context.Background(), durable.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(context.Background())
	before := runtime.NumGoroutine()
	if second, err := durable.Open(context.Background(), durable.Config{Dir: dir}); err == nil {
		second.Close(context.Background())
		t.Fatal("second Open of a locked store succeeded")
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("failed Open left %d goroutines behind", after-before)
	}
	if _, err := first.Publish(context.Background(), "still:works", []byte(`1`), engine.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
}
