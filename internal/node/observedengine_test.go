package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// brokenHistory is an engine whose history reads fail.
type brokenHistory struct{ engine.Engine }

var errBroken = errors.New("history unavailable")

func (brokenHistory) History(context.Context, string, engine.HistoryQuery) (engine.HistoryResult, error) {
	return engine.HistoryResult{}, errBroken
}

// Every engine call a node makes reaches the observer under its operation,
// with its error: subscribes and presence from a session, history from the
// API, unsubscribes and presence removal when the session ends.
func TestObserverHearsEngineCalls(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs})
	ctx := context.Background()
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{"engine:a"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, n, "engine:a", 0)
	if _, err := n.History(ctx, protocol.HistoryRequest{Channel: "engine:a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Presence(ctx, "engine:a"); err != nil {
		t.Fatal(err)
	}
	p.s.Close(protocol.DisconnectForced)
	<-p.done
	testkit.WaitFor(t, 10*time.Second, "the session's release", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.engineCalls["unsubscribe"] == 1 && obs.engineCalls["presence_remove"] == 1
	})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, op := range []string{"subscribe", "history", "presence_add", "presence", "publish", "publish_join"} {
		if obs.engineCalls[op] == 0 {
			t.Errorf("no %s call reported; saw %v", op, obs.engineCalls)
		}
	}
	if len(obs.engineErrs) != 0 {
		t.Errorf("errors reported for calls that succeeded: %v", obs.engineErrs)
	}
}

func TestObserverHearsEngineErrors(t *testing.T) {
	obs := &recordingObserver{}
	n := newTestNode(t, Config{Observer: obs, Engine: brokenHistory{memory.New(memory.Config{})}})
	if _, err := n.History(context.Background(), protocol.HistoryRequest{Channel: "engine:b"}); err == nil {
		t.Fatal("history from a broken engine succeeded")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.engineCalls["history"] != 1 || obs.engineErrs["history"] != 1 {
		t.Fatalf("history calls %d, errors %d; want 1 and 1", obs.engineCalls["history"], obs.engineErrs["history"])
	}
}

// Without an observer the node calls its engine directly.
func TestNoObserverNoWrapper(t *testing.T) {
	e := memory.New(memory.Config{})
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	if got := observeEngine(e, nil); got != engine.Engine(e) {
		t.Fatalf("engine wrapped without an observer: %T", got)
	}
}
