package client_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestBinaryKill9 runs the built herald binary on its durable store, with
// one client per transport subscribed to two channels while a publisher
// publishes at a steady rate, and kills the server with SIGKILL in the
// middle of the stream, restarting it on the same store and port, several
// times. Every client must get every publication once, in order, and report
// each resume as recovered. Then the server restarts on an empty store, and
// every subscription must report that it could not recover.
func TestBinaryKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const total, kills = 900, 3
	bin := testkit.BuildHerald(t)
	dataDir := t.TempDir()
	h := testkit.StartHerald(t, bin, "--dev", "--engine", "durable", "--data-dir", dataDir, "--addr", "127.0.0.1:0")
	addr := h.Addr
	base := "http://" + addr
	restart := func(dir string) {
		t.Helper()
		h = testkit.StartHerald(t, bin, "--dev", "--engine", "durable", "--data-dir", dir, "--addr", addr)
	}

	channels := []string{"kill:a", "kill:b"}
	clients := map[client.Transport]map[string]*recorder{}
	for _, tr := range transports {
		c := newClient(t, base, tr, nil)
		clients[tr] = subscribeAll(t, c, channels)
	}
	least := func() int {
		n := total
		for _, recs := range clients {
			n = min(n, received(recs))
		}
		return n
	}
	pub := startPublisher(t, func() string { return base }, channels, total, 3*time.Millisecond)
	for i := range kills {
		// A WebRTC client notices a killed server only when ICE gives up
		// (seconds), by which time the publisher may be done.
		target := min(least()+60, total)
		testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("every client at %d publications before kill %d", target, i), func() bool { return least() >= target })
		h.Kill9(t)
		restart(dataDir)
	}
	select {
	case <-pub.done:
	case <-time.After(90 * time.Second):
		t.Fatal("publisher did not finish")
	}
	testkit.WaitFor(t, 60*time.Second, "every client to receive everything", func() bool { return least() >= total })
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			resumes := checkStream(t, clients[tr], total)
			t.Logf("%s: %d publications on %d channels across %d kill -9 restarts: lost 0, repeated 0, %d resumes reported, all recovered", tr, total, len(channels), kills, resumes)
		})
	}

	// An empty store is a new epoch: nothing can be recovered, and every
	// subscription must say so. A client may still report a resume from the
	// last kill, on the old store, after this point (a long poll that was
	// between polls), so the answer that counts is the first one in another
	// epoch than the old store's.
	oldEpoch := map[client.Transport]map[string]string{}
	for tr, recs := range clients {
		oldEpoch[tr] = map[string]string{}
		for ch, r := range recs {
			evs := r.subscribedEvents()
			oldEpoch[tr][ch] = evs[len(evs)-1].Position.Epoch
		}
	}
	h.Kill9(t)
	restart(t.TempDir())
	for tr, recs := range clients {
		for ch, r := range recs {
			var fresh client.SubscribedEvent
			testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%v %s subscribed on the new store", tr, ch), func() bool {
				for _, e := range r.subscribedEvents() {
					if e.Position.Epoch != oldEpoch[tr][ch] {
						fresh = e
						return true
					}
				}
				return false
			})
			if !fresh.WasRecovering || fresh.Recovered {
				t.Errorf("%v %s after the store was lost: %+v", tr, ch, fresh)
			}
		}
	}
	if err := h.Stop(t, 20*time.Second); err != nil {
		t.Errorf("herald after SIGTERM: %v\n%s", err, h.Log())
	}
}

// The client package depends on no server backend: importing it must not
// pull in the WebSocket server library, Pebble, Redis or NATS.
func TestClientDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./client")
	cmd.Dir = testkit.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		for _, bad := range []string{"github.com/lesismal/", "github.com/cockroachdb/", "github.com/redis/", "github.com/nats-io/", "github.com/heraldrt/herald/internal/node", "github.com/heraldrt/herald/internal/engine", "github.com/heraldrt/herald/internal/server"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("client depends on %s", dep)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/coder/websocket") {
		t.Fatalf("go list -deps ./client does not list its WebSocket library:\n%s", out)
	}
}
