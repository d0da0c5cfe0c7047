package client_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

// checkStream verifies what the subscriptions of one client received while
// a publisher sent sequence numbers 0..total-1 round robin over their
// channels: every number exactly once, each channel in order with
// consecutive offsets, and every resume recovered. It returns how many
// resumes the subscriptions reported.
func checkStream(t *testing.T, recs map[string]*recorder, total int) (resumes int) {
	t.Helper()
	var all []int
	for ch, r := range recs {
		pubs := r.publications()
		got := seqs(t, pubs)
		for i, p := range pubs {
			if p.Offset != uint64(i+1) {
				t.Errorf("%s: publication %d has offset %d (lost or repeated)", ch, i, p.Offset)
				break
			}
			if i > 0 && got[i] <= got[i-1] {
				t.Errorf("%s: seq %d after %d", ch, got[i], got[i-1])
				break
			}
		}
		all = append(all, got...)
		for _, e := range r.subscribedEvents() {
			if e.WasRecovering {
				resumes++
				if !e.Recovered {
					t.Errorf("%s: resume not recovered: %+v", ch, e)
				}
			}
		}
	}
	slices.Sort(all)
	lost, repeated := 0, 0
	for i, want := 0, 0; want < total; want++ {
		switch {
		case i < len(all) && all[i] == want:
			i++
			for i < len(all) && all[i] == want {
				repeated++
				i++
			}
		default:
			lost++
		}
	}
	if lost != 0 || repeated != 0 || len(all) != total {
		t.Errorf("received %d of %d: %d lost, %d repeated", len(all), total, lost, repeated)
	}
	return resumes
}

func received(recs map[string]*recorder) int {
	n := 0
	for _, r := range recs {
		n += len(r.publications())
	}
	return n
}

// subscribeAll connects c and subscribes it to channels, recording each.
func subscribeAll(t *testing.T, c *client.Client, channels []string) map[string]*recorder {
	t.Helper()
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	recs := map[string]*recorder{}
	for _, ch := range channels {
		r := &recorder{}
		sub, err := c.NewSubscription(ch, r.config())
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Subscribe(ctx); err != nil {
			t.Fatal(err)
		}
		recs[ch] = r
	}
	return recs
}

// TestResumeAcrossForcedDisconnects is the client's central promise: while
// a publisher publishes at a steady rate, the connection is cut in the
// middle of the stream (a network failure: the proxy resets both sides) and
// the server is restarted on the same durable store, again and again; across
// the whole run every publication arrives once, in order, and every resume
// reports recovered.
func TestResumeAcrossForcedDisconnects(t *testing.T) {
	const total, disruptions = 1200, 8
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			dir := t.TempDir()
			srv := startDurable(t, dir)
			px := newProxy(t, srv.Addr())
			var mu sync.Mutex
			var reasons []string
			c := newClient(t, px.URL(), tr, func(cfg *client.Config) {
				cfg.OnConnecting = func(e client.ConnectingEvent) {
					mu.Lock()
					reasons = append(reasons, fmt.Sprintf("code=%d %s %v", e.Code, e.Reason, e.Err))
					mu.Unlock()
				}
			})
			channels := []string{"resume-" + tr.String() + ":a", "resume-" + tr.String() + ":b"}
			recs := subscribeAll(t, c, channels)
			pub := startPublisher(t, srv.URL, channels, total, 2*time.Millisecond)

			cuts, restarts := 0, 0
			for i := range disruptions {
				// Disrupt in the middle of the stream: only once more
				// publications arrived since the last disruption.
				target := received(recs) + 40
				testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%d publications before disruption %d", target, i), func() bool { return received(recs) >= target })
				if i%2 == 0 {
					if px.cut() > 0 {
						cuts++
					}
				} else {
					srv.restart(dir)
					restarts++
				}
			}
			select {
			case <-pub.done:
			case <-time.After(60 * time.Second):
				t.Fatal("publisher did not finish")
			}
			testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("all %d publications", total), func() bool { return received(recs) >= total })
			resumes := checkStream(t, recs, total)
			mu.Lock()
			defer mu.Unlock()
			reconnects := len(reasons) - 1 // the first is Connect's
			t.Logf("%s: %d publications on %d channels, %d connection cuts, %d server restarts, %d reconnects, %d resumes reported (all recovered), lost 0, repeated 0",
				tr, total, len(channels), cuts, restarts, reconnects, resumes)
			// WebSocket and SSE lose their connection at each disruption,
			// and must resume both channels after each one to receive more.
			// A poll loop only notices the disruptions that hit a poll in
			// flight (a stateless poll after a restart simply continues),
			// and its first poll after each reconnect resumes every channel.
			switch tr {
			case client.WebSocket, client.SSE:
				if reconnects < cuts+restarts || resumes < len(channels)*(cuts+restarts) {
					t.Errorf("%d reconnects and %d resumes for %d disruptions:\n%s", reconnects, resumes, cuts+restarts, strings.Join(reasons, "\n"))
				}
			default:
				if resumes < len(channels)*reconnects {
					t.Errorf("%d resumes for %d reconnects of %d channels", resumes, reconnects, len(channels))
				}
			}
		})
	}
}

// TestResumeNotRecovered restarts the server on an empty store: the
// channels' epoch changes, so resuming is impossible, and each subscription
// must say so (WasRecovering without Recovered) and continue from the new
// epoch.
func TestResumeNotRecovered(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			srv := startDurable(t, t.TempDir())
			c := newClient(t, srv.URL(), tr, nil)
			channel := "epoch-" + tr.String() + ":x"
			recs := subscribeAll(t, c, []string{channel})
			r := recs[channel]
			var old client.PublishResult
			for i := range 5 {
				old = mustPublish(t, srv.URL(), channel, i)
			}
			r.waitPubs(t, 5)

			srv.restart(t.TempDir())
			ev := r.waitSubscribed(t, 2)[1]
			if !ev.WasRecovering || ev.Recovered {
				t.Fatalf("resume across an epoch change: %+v", ev)
			}
			if ev.Position.Epoch == old.Epoch {
				t.Fatalf("epoch %q did not change", old.Epoch)
			}
			fresh := mustPublish(t, srv.URL(), channel, 5)
			pubs := r.waitPubs(t, 6)
			if p := pubs[5]; p.Offset != 1 || p.Epoch != fresh.Epoch || fresh.Offset != 1 {
				t.Fatalf("first publication of the new epoch: %+v (published %+v)", p, fresh)
			}
			sub, _ := c.GetSubscription(channel)
			testkit.WaitFor(t, 5*time.Second, "position in the new epoch", func() bool {
				return sub.Position() == client.StreamPosition{Epoch: fresh.Epoch, Offset: 1}
			})
		})
	}
}

// TestSlowHandler blocks the handler while publications pile up: the
// bounded buffer fills, the client drops the connection (WebSocket, SSE) or
// stops polling, and once the handler moves again everything arrives once,
// in order.
func TestSlowHandler(t *testing.T) {
	const total, buffer = 300, 16
	srv := startServer(t, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			var mu sync.Mutex
			var reasons []string
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.BufferSize = buffer
				cfg.OnConnecting = func(e client.ConnectingEvent) {
					mu.Lock()
					reasons = append(reasons, e.Reason)
					mu.Unlock()
				}
			})
			gate := make(chan struct{})
			var once sync.Once
			var rec recorder
			cfg := rec.config()
			record := cfg.OnPublication
			cfg.OnPublication = func(p client.Publication) {
				once.Do(func() { <-gate })
				record(p)
			}
			channel := "slow:" + tr.String()
			sub, err := c.NewSubscription(channel, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range total {
				mustPublish(t, srv.URL(), channel, i)
			}
			if tr == client.WebSocket || tr == client.SSE {
				testkit.WaitFor(t, 10*time.Second, "the client to drop its connection", func() bool { return c.State() == client.StateConnecting })
			}
			close(gate)
			pubs := rec.waitPubs(t, total)
			if got := seqs(t, pubs); len(got) != total || got[0] != 0 || got[total-1] != total-1 {
				t.Fatalf("received %d publications", len(got))
			}
			for i, p := range pubs {
				if p.Offset != uint64(i+1) {
					t.Fatalf("publication %d has offset %d", i, p.Offset)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			slow := 0
			for _, r := range reasons {
				if strings.Contains(r, "slow handler") {
					slow++
				}
			}
			if (tr == client.WebSocket || tr == client.SSE) && slow == 0 {
				t.Fatalf("no slow-handler reconnect; reasons %q", reasons)
			}
			if (tr == client.LongPoll || tr == client.ShortPoll) && slow != 0 {
				t.Fatalf("polling reconnected for a slow handler: %q", reasons)
			}
		})
	}
}
