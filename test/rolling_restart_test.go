package test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestRollingRestartDrain restarts every node of a three-node Redis cluster
// in turn with SIGTERM, as a deployment would, waiting for each to be ready
// (/readyz) before stopping the next, while a publisher goes on through the
// server API and clients on WebSocket, SSE and long polling listen behind
// the balancer. Each draining node must tell its WebSocket and SSE clients
// to reconnect (4000) rather than cut them, and every acknowledged
// publication must reach every client exactly once, in order.
func TestRollingRestartDrain(t *testing.T) {
	began := time.Now()
	bin := testkit.BuildHerald(t)
	c := startCluster(t, bin, brokers[0].start(t), "drain_spread: 2s", "shutdown_timeout: 8s")
	const channel = "roll:drain"

	var mu sync.Mutex
	told := map[string]int{} // client name → reconnect hints (4000) received
	clients := map[string]*recordingClient{}
	for _, tr := range []client.Transport{client.WebSocket, client.SSE, client.LongPoll} {
		for i := range 3 {
			name := fmt.Sprintf("%s-%d", tr, i)
			clients[name] = newRecordingClient(t, c.lb.URL(""), tr, channel, func(cfg *client.Config) {
				cfg.OnConnecting = func(e client.ConnectingEvent) {
					if e.Code == 4000 {
						mu.Lock()
						told[name]++
						mu.Unlock()
					}
				}
			})
		}
	}
	pub := startPublisher(func() string { return c.lb.URL("") }, channel, 10*time.Millisecond)
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	for i := range c.nodes {
		before := pub.count()
		if err := c.nodes[i].Stop(t, 20*time.Second); err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, c.nodes[i].Log())
		}
		c.restart(i)
		testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("node %d to be ready", i), func() bool {
			res, err := hc.Get(c.nodes[i].URL("/readyz"))
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		})
		testkit.WaitFor(t, 20*time.Second, "publishing goes on", func() bool { return pub.count() >= before+30 })
	}
	waitAll(t, clients, pub.finish(t))

	mu.Lock()
	defer mu.Unlock()
	for name := range clients {
		if !strings.HasPrefix(name, client.LongPoll.String()) {
			if told[name] == 0 {
				t.Errorf("%s was never told to reconnect (4000) while its node drained", name)
			}
		}
	}
	if took := time.Since(began); took > 60*time.Second {
		t.Errorf("rolling restart took %v, budget 60s", took)
	}
}
