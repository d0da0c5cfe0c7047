package enginetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/testkit"
)

// testControl: a control message to all nodes, or to this node by id,
// reaches this node's HandleControl; one to another node does not.
func (s *suite) testControl(t *testing.T) {
	e, rec := s.start(t)
	ctx := t.Context()
	if err := e.PublishControl(ctx, []byte("to-all"), ""); err != nil {
		t.Fatalf("PublishControl to all: %v", err)
	}
	if err := e.PublishControl(ctx, []byte("to-me"), nodeID); err != nil {
		t.Fatalf("PublishControl to self: %v", err)
	}
	if err := e.PublishControl(ctx, []byte("to-other"), "some-other-node"); err != nil {
		t.Fatalf("PublishControl to another node: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "control messages", func() bool { return len(rec.controlMessages()) >= 2 })
	never(t, "a control message for another node arrived", func() bool {
		return slices.Contains(rec.controlMessages(), "to-other")
	})
	if got := rec.controlMessages(); !slices.Contains(got, "to-all") || !slices.Contains(got, "to-me") {
		t.Fatalf("control messages %q, want to-all and to-me", got)
	}
}

// testClosed: after Close every call returns ErrClosed, and Close is safe to
// call again.
func (s *suite) testClosed(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("closed")
	publish(t, e, ch, `{}`, stored(10))
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	info := client("c", "u")
	calls := map[string]func() error{
		"Publish": func() error {
			_, err := e.Publish(ctx, ch, []byte(`{}`), stored(10))
			return err
		},
		"PublishEphemeral": func() error {
			_, err := e.Publish(ctx, ch, []byte(`{}`), engine.PublishOptions{})
			return err
		},
		"History": func() error {
			_, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
			return err
		},
		"RemoveHistory":  func() error { return e.RemoveHistory(ctx, ch) },
		"Subscribe":      func() error { return e.Subscribe(ctx, ch) },
		"Unsubscribe":    func() error { return e.Unsubscribe(ctx, ch) },
		"PublishJoin":    func() error { return e.PublishJoin(ctx, ch, info) },
		"PublishLeave":   func() error { return e.PublishLeave(ctx, ch, info) },
		"AddPresence":    func() error { return e.AddPresence(ctx, ch, info) },
		"RemovePresence": func() error { return e.RemovePresence(ctx, ch, info.Client) },
		"Presence": func() error {
			_, err := e.Presence(ctx, ch)
			return err
		},
		"PresenceStats": func() error {
			_, err := e.PresenceStats(ctx, ch)
			return err
		},
		"PublishControl": func() error { return e.PublishControl(ctx, []byte("x"), "") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("%s after Close: error %v, want engine.ErrClosed", name, err)
		}
	}
}

// testNoLeak: an engine that was used and closed leaves no goroutine behind.
func (s *suite) testNoLeak(t *testing.T) {
	before := goleak.IgnoreCurrent()
	e := s.newEngine(t)
	rec := newRecorder()
	ctx := context.Background()
	if err := e.Start(ctx, nodeID, rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ch := channelName("leak")
	subscribe(t, e, ch)
	publish(t, e, ch, `{}`, stored(10))
	publish(t, e, ch, `{}`, engine.PublishOptions{})
	history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if err := e.AddPresence(ctx, ch, client("c", "u")); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if err := e.PublishControl(ctx, []byte("x"), ""); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "deliveries", func() bool { return rec.count(ch) == 2 })
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rec.report(t)
	goleak.VerifyNone(t, before)
}
