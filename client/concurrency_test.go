package client_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
)

// TestConcurrentUse shares one Client between goroutines that publish, read
// history and subscribe and unsubscribe at the same time, on every
// transport (run it with -race). Every call must succeed with results that
// make sense for the goroutine that made it, and a subscription held
// throughout must see every publication once, in order.
func TestConcurrentUse(t *testing.T) {
	// The workers send bursts of commands well above the default rate limit
	// of a bidirectional connection, which is not under test here.
	srv := startServer(t, func(c *server.Config) { c.CommandRate, c.CommandBurst = 1e4, 1e4 })
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			all := fmt.Sprintf("conc-%s:all", tr)
			var rec recorder
			sub, err := c.NewSubscription(all, rec.config())
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}

			type payload struct{ W, I int }
			const workers, rounds = 6, 8
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					own := fmt.Sprintf("conc-%s:own%d", tr, w)
					churn := fmt.Sprintf("conc-%s:churn%d", tr, w)
					for i := range rounds {
						data, _ := json.Marshal(payload{w, i})
						if _, err := c.Publish(ctx, all, data); err != nil {
							t.Errorf("worker %d: publish to %s: %v", w, all, err)
							return
						}
						res, err := c.Publish(ctx, own, data)
						if err != nil || res.Offset != uint64(i+1) {
							t.Errorf("worker %d: publish %d to %s: offset %d, %v", w, i, own, res.Offset, err)
							return
						}
						h, err := c.History(ctx, own, client.HistoryOptions{})
						if err != nil || len(h.Publications) != i+1 || string(h.Publications[i].Data) != string(data) || h.Position.Offset != res.Offset {
							t.Errorf("worker %d: history of %s after %d publishes: %+v, %v", w, own, i+1, h, err)
							return
						}
						s, err := c.NewSubscription(churn, client.SubscriptionConfig{})
						if err != nil {
							t.Errorf("worker %d: new subscription %d: %v", w, i, err)
							return
						}
						if err := s.Subscribe(ctx); err != nil {
							t.Errorf("worker %d: subscribe %d: %v", w, i, err)
							return
						}
						if err := c.RemoveSubscription(ctx, s); err != nil {
							t.Errorf("worker %d: remove subscription %d: %v", w, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}

			pubs := rec.waitPubs(t, workers*rounds)
			next := make([]int, workers)
			for j, p := range pubs {
				var d payload
				if err := json.Unmarshal(p.Data, &d); err != nil {
					t.Fatal(err)
				}
				if p.Offset != uint64(j+1) || d.W < 0 || d.W >= workers || d.I != next[d.W] {
					t.Fatalf("publication %d on %s is offset %d from worker %d round %d (lost, repeated or out of order)", j, all, p.Offset, d.W, d.I)
				}
				next[d.W]++
			}
			if len(pubs) != workers*rounds {
				t.Fatalf("%s got %d publications, want %d", all, len(pubs), workers*rounds)
			}
		})
	}
}
