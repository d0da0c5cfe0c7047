package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/node"
)

// A subscription added while a long poll waits on the server joins at once:
// the waiting poll is abandoned rather than waited out.
func TestLongPollAddsSubscriptionAtOnce(t *testing.T) {
	srv := startServer(t, nil)
	c := newClient(t, srv.URL(), client.LongPoll, func(cfg *client.Config) { cfg.PollTimeout = 60 * time.Second })
	recs := subscribeAll(t, c, []string{"lp:a"})
	mustPublish(t, srv.URL(), "lp:a", 0)
	recs["lp:a"].waitPubs(t, 1) // the loop is now in a long poll
	sub, err := c.NewSubscription("lp:b", client.SubscriptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
}

// Publications that leave history between two polls break continuity: the
// subscription says so with OnSubscribed, as a failed resume would, and
// continues from the channel's newest position.
func TestPollContinuityBroken(t *testing.T) {
	srv := startServer(t, func(c *serverConfig) {
		small := node.DevNamespace("small")
		small.HistorySize = 5
		c.Namespaces = []node.NamespaceOptions{small}
	})
	// Short polls an hour apart: the loop polls again only when the
	// subscriptions change.
	c := newClient(t, srv.URL(), client.ShortPoll, func(cfg *client.Config) { cfg.PollInterval = time.Hour })
	recs := subscribeAll(t, c, []string{"small:x"})
	rec := recs["small:x"]
	for i := range 20 {
		mustPublish(t, srv.URL(), "small:x", i)
	}
	nudge, _ := c.NewSubscription("small:nudge", client.SubscriptionConfig{})
	if err := nudge.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ev := rec.waitSubscribed(t, 2)[1]
	if !ev.WasRecovering || ev.Recovered || ev.Position.Offset != 20 {
		t.Fatalf("after losing publications: %+v", ev)
	}
	if n := len(rec.publications()); n != 0 {
		t.Fatalf("%d publications delivered across a gap", n)
	}
	mustPublish(t, srv.URL(), "small:x", 20)
	nudge2, _ := c.NewSubscription("small:nudge2", client.SubscriptionConfig{})
	if err := nudge2.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if p := rec.waitPubs(t, 1)[0]; p.Offset != 21 {
		t.Fatalf("first publication after the gap: %+v", p)
	}
}
