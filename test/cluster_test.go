package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/testkit"
)

// The cluster tests run three `herald serve` processes on one broker, each a
// real redis-server or nats-server on a loopback port, once per broker.

const clusterSecret = "cluster-test-secret-of-at-least-32-bytes"

// broker starts a fresh broker for one test and returns the serve flags
// that point a node at it.
type broker struct {
	name  string
	start func(t *testing.T) []string
}

var brokers = []broker{
	{"redis", func(t *testing.T) []string {
		url, _ := testkit.StartRedis(t)
		return []string{"--engine", "redis", "--redis-url", url}
	}},
	{"nats", func(t *testing.T) []string {
		url := testkit.StartNATS(t).URL
		return []string{"--engine", "nats", "--nats-url", url}
	}},
}

// cluster is three nodes on one broker and a balancer in front of them.
type cluster struct {
	t     *testing.T
	bin   string
	args  []string
	nodes []*testkit.Herald
	lb    *testkit.Balancer
}

// startCluster starts three nodes with brokerArgs and a config file holding
// the cluster's settings plus extraConfig, YAML at the top level.
func startCluster(t *testing.T, bin string, brokerArgs []string, extraConfig ...string) *cluster {
	t.Helper()
	config := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(config, []byte(`
personal_namespace: personal
node_heartbeat: 200ms
connection_rate: 0
engine_prefix: `+testkit.NATSPrefix()+`
auth:
  hmac_secret: "`+clusterSecret+`"
`+strings.Join(extraConfig, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, args: append([]string{"--dev", "--api-key", apiKey, "--config", config}, brokerArgs...)}
	var addrs []string
	for range 3 {
		h := testkit.StartHerald(t, bin, append([]string{"--addr", "127.0.0.1:0"}, c.args...)...)
		c.nodes = append(c.nodes, h)
		addrs = append(addrs, h.Addr)
	}
	c.lb = testkit.StartBalancer(t, addrs...)
	c.waitNodes(0, 3)
	return c
}

// restart starts node i again on its address after it was stopped.
func (c *cluster) restart(i int) {
	c.t.Helper()
	c.nodes[i] = testkit.StartHerald(c.t, c.bin, append([]string{"--addr", c.nodes[i].Addr}, c.args...)...)
}

// waitNodes waits until node i's /api/info lists want live nodes.
func (c *cluster) waitNodes(i, want int) {
	c.t.Helper()
	testkit.WaitFor(c.t, 15*time.Second, fmt.Sprintf("node %d to list %d nodes", i, want), func() bool {
		var info struct{ Nodes []json.RawMessage }
		return apiCall(httpClient, c.nodes[i].URL(""), "/api/info", struct{}{}, &info) == nil && len(info.Nodes) == want
	})
}

func clusterToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Mint(auth.MintOptions{Secret: []byte(clusterSecret), UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sdkEvent is what a recording SDK client saw, in handler order.
type sdkEvent struct {
	subscribed               bool
	recovered, wasRecovering bool
	epoch                    string
	offset                   uint64
	seq                      int
}

// recordingClient is an SDK client subscribed to one channel that records
// its subscription and publication events.
type recordingClient struct {
	c  *client.Client
	mu sync.Mutex
	ev []sdkEvent
}

func newRecordingClient(t *testing.T, url string, tr client.Transport, channel string, tweak func(*client.Config)) *recordingClient {
	t.Helper()
	r := &recordingClient{}
	cfg := client.Config{URL: url, Transport: tr, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		PollTimeout: 2 * time.Second, PollInterval: 20 * time.Millisecond, IdleTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() { _ = c.Close() })
	sub, err := c.NewSubscription(channel, client.SubscriptionConfig{
		OnSubscribed: func(e client.SubscribedEvent) {
			r.add(sdkEvent{subscribed: true, recovered: e.Recovered, wasRecovering: e.WasRecovering, epoch: e.Position.Epoch, offset: e.Position.Offset})
		},
		OnPublication: func(p client.Publication) {
			var d struct{ Seq int }
			_ = json.Unmarshal(p.Data, &d)
			r.add(sdkEvent{epoch: p.Epoch, offset: p.Offset, seq: d.Seq})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 15*time.Second, "first subscribed event", func() bool { return len(r.events()) > 0 })
	return r
}

func (r *recordingClient) add(e sdkEvent) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

func (r *recordingClient) events() []sdkEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdkEvent(nil), r.ev...)
}

// seqs returns the sequence numbers received, in order.
func (r *recordingClient) seqs() []int {
	var out []int
	for _, e := range r.events() {
		if !e.subscribed {
			out = append(out, e.seq)
		}
	}
	return out
}

// checkContinuity fails on a silent gap: every publication must follow the
// previous one's offset in the same epoch, unless a subscribed event with
// recovered=false came between them. It returns how many such breaks it saw.
func (r *recordingClient) checkContinuity(t *testing.T, name string) (breaks int) {
	t.Helper()
	var epoch string
	var last uint64
	known := false
	for i, e := range r.events() {
		switch {
		case e.subscribed && e.wasRecovering && !e.recovered:
			breaks++
			epoch, last, known = e.epoch, e.offset, true
		case e.subscribed:
			if !known {
				epoch, last, known = e.epoch, e.offset, true
			}
		default:
			if e.epoch != epoch || e.offset != last+1 {
				t.Fatalf("%s: event %d: publication %s/%d after %s/%d with no recovered=false in between", name, i, e.epoch, e.offset, epoch, last)
			}
			last = e.offset
		}
	}
	return breaks
}

// steadyPublisher publishes seq 0, 1, 2, … to channel through base at a
// steady rate until stopped, retrying each until acknowledged with the same
// idempotency key, so a retry of a publish that was stored is not stored
// twice.
type steadyPublisher struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	acked int
	err   error
}

func startPublisher(base func() string, channel string, interval time.Duration) *steadyPublisher {
	p := &steadyPublisher{stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 3 * time.Second}
	go func() {
		defer close(p.done)
		defer hc.CloseIdleConnections()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			body := map[string]any{"channel": channel, "data": map[string]int{"seq": seq}, "idempotency_key": fmt.Sprintf("seq-%d", seq)}
			deadline := time.Now().Add(30 * time.Second)
			for {
				var a ack
				err := apiCall(hc, base(), "/api/publish", body, &a)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					p.mu.Lock()
					p.err = fmt.Errorf("seq %d not acknowledged within 30s: %w", seq, err)
					p.mu.Unlock()
					return
				}
				hc.CloseIdleConnections()
				time.Sleep(20 * time.Millisecond) // retry pacing, not a wait for correctness
			}
			p.mu.Lock()
			p.acked = seq + 1
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *steadyPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// finish stops publishing and returns how many seqs were acknowledged.
func (p *steadyPublisher) finish(t *testing.T) int {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.acked
}

// waitAll waits until every client received seqs 0..n-1 and checks each got
// them exactly once, in order.
func waitAll(t *testing.T, clients map[string]*recordingClient, n int) {
	t.Helper()
	for name, r := range clients {
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to receive %d publications", name, n), func() bool { return len(r.seqs()) >= n })
		got := r.seqs()
		for i, s := range got {
			if s != i {
				t.Fatalf("%s: publication %d carries seq %d (lost, repeated or reordered); %d received", name, i, s, len(got))
			}
		}
		if len(got) != n {
			t.Fatalf("%s: %d publications, %d acknowledged", name, len(got), n)
		}
		if breaks := r.checkContinuity(t, name); breaks != 0 {
			t.Fatalf("%s: %d resumes were not recovered", name, breaks)
		}
	}
}

var sdkTransports = []client.Transport{client.WebSocket, client.SSE, client.LongPoll, client.ShortPoll}

func TestCluster(t *testing.T) {
	bin := testkit.BuildHerald(t)
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Run("cross-node delivery on every transport", func(t *testing.T) { crossNode(t, bin, b) })
			t.Run("long polls hopping between nodes", func(t *testing.T) { hoppingPolls(t, bin, b) })
			t.Run("registry across nodes", func(t *testing.T) { registry(t, bin, b) })
			t.Run("join and leave across nodes", func(t *testing.T) { joinLeave(t, bin, b) })
			t.Run("kill -9 a node under load", func(t *testing.T) { killNode(t, bin, b) })
			t.Run("rolling restart under load", func(t *testing.T) { rollingRestart(t, bin, b) })
		})
	}
}

// A client on node A receives what is published on node C, on every
// transport; presence is shared.
func crossNode(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t))
	ctx := context.Background()
	for _, d := range drivers {
		channel := "x:" + d.name
		r, err := newReader(d.open(ctx, c.nodes[0].URL(""), []string{channel}, nil))
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		for i := range 20 {
			serverPublish(t, c.nodes[2].URL(""), channel, i)
		}
		collect(t, r, channel, 0, 20)
		r.close()
	}

	a, err := newReader(openWebSocket(ctx, c.nodes[0].URL(""), []string{"x:room"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	bb, err := newReader(openWebSocket(ctx, c.nodes[1].URL(""), []string{"x:room"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bb.close()
	var pres struct {
		Clients map[string]json.RawMessage `json:"clients"`
	}
	if err := apiCall(httpClient, c.nodes[2].URL(""), "/api/presence", map[string]string{"channel": "x:room"}, &pres); err != nil || len(pres.Clients) != 2 {
		t.Fatalf("presence on node C of clients on A and B: %v, %v", pres.Clients, err)
	}

	// Node C's info reports the other nodes' counts, carried by their
	// heartbeats: one client on A, one on B, none on C.
	want := map[string]int{nodeID(t, c, 0): 1, nodeID(t, c, 1): 1, nodeID(t, c, 2): 0}
	got := map[string]int{}
	testkit.WaitFor(t, 10*time.Second, "node C's info to report one client on A and one on B", func() bool {
		var info struct {
			Nodes []struct {
				ID         string `json:"id"`
				NumClients int    `json:"num_clients"`
			}
		}
		if apiCall(httpClient, c.nodes[2].URL(""), "/api/info", struct{}{}, &info) != nil {
			return false
		}
		clear(got)
		for _, n := range info.Nodes {
			got[n.ID] = n.NumClients
		}
		return maps.Equal(got, want)
	})
}

// nodeID is node i's id, as its own /api/info names it.
func nodeID(t *testing.T, c *cluster, i int) string {
	t.Helper()
	var info struct {
		Node string `json:"node"`
	}
	if err := apiCall(httpClient, c.nodes[i].URL(""), "/api/info", struct{}{}, &info); err != nil || info.Node == "" {
		t.Fatalf("node %d's id: %q, %v", i, info.Node, err)
	}
	return info.Node
}

// A long-polling client whose successive polls hit different nodes loses
// nothing and repeats nothing, while publications arrive through every node.
func hoppingPolls(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t))
	const channel, total = "hop:main", 150
	ctx := context.Background()
	first, err := poll(ctx, c.nodes[0].URL(""), []string{channel}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() {
		for i := range total {
			var a ack
			if err := apiCall(httpClient, c.nodes[i%3].URL(""), "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"seq": i}}, &a); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	since := first.Next
	var got []int
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; len(got) < total; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d publications after 60s", len(got), total)
		}
		r, err := poll(ctx, c.nodes[i%3].URL(""), []string{channel}, since, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Unrecovered) > 0 {
			t.Fatalf("poll %d on node %d: not recovered", i, i%3)
		}
		for _, p := range r.Publications {
			var d struct{ Seq int }
			if err := json.Unmarshal(p.Data, &d); err != nil || d.Seq != len(got) {
				t.Fatalf("poll %d on node %d: seq %d after %d publications (%v)", i, i%3, d.Seq, len(got), err)
			}
			got = append(got, d.Seq)
		}
		since = r.Next
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
}

// The connection registry spans nodes: a user's connections on two nodes are
// listed, sent to and disconnected from a third.
func registry(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t))
	tok := clusterToken(t, "alice")
	type personal struct {
		mu   sync.Mutex
		got  []string
		disc []uint16
	}
	var seen [2]personal
	for i := range 2 {
		cl, err := client.New(client.Config{URL: c.nodes[i].URL(""), Token: tok,
			OnServerPublication: func(p client.Publication) {
				seen[i].mu.Lock()
				seen[i].got = append(seen[i].got, string(p.Data))
				seen[i].mu.Unlock()
			},
			OnDisconnected: func(e client.DisconnectedEvent) {
				seen[i].mu.Lock()
				seen[i].disc = append(seen[i].disc, e.Code)
				seen[i].mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = cl.Connect(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	third := c.nodes[2].URL("")
	var conns struct {
		Connections []struct{ Client, User, Node string }
		Missing     []string `json:"missing_nodes"`
	}
	testkit.WaitFor(t, 10*time.Second, "alice's two connections listed by node C", func() bool {
		err := apiCall(httpClient, third, "/api/connections", map[string]string{"user": "alice"}, &conns)
		return err == nil && len(conns.Connections) == 2 && len(conns.Missing) == 0
	})
	if conns.Connections[0].Node == conns.Connections[1].Node {
		t.Fatalf("both connections on one node: %+v", conns)
	}
	testkit.WaitFor(t, 10*time.Second, "personal channel subscribed on both nodes", func() bool {
		var pres struct{ Clients map[string]json.RawMessage }
		return apiCall(httpClient, third, "/api/presence", map[string]string{"channel": "personal:#alice"}, &pres) == nil && len(pres.Clients) == 2
	})
	var a ack
	if err := apiCall(httpClient, third, "/api/send_user", map[string]any{"user": "alice", "data": map[string]string{"hi": "alice"}}, &a); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("personal message on node %d", i), func() bool {
			seen[i].mu.Lock()
			defer seen[i].mu.Unlock()
			return len(seen[i].got) == 1 && strings.Contains(seen[i].got[0], "alice")
		})
	}
	if err := apiCall(httpClient, third, "/api/disconnect", map[string]string{"user": "alice"}, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("alice disconnected on node %d", i), func() bool {
			seen[i].mu.Lock()
			defer seen[i].mu.Unlock()
			return len(seen[i].disc) > 0 && seen[i].disc[len(seen[i].disc)-1] == 4504
		})
	}
}

// A client joining a channel on node A is pushed as a join to a watcher
// subscribed on node B, and its leaving as a leave.
func joinLeave(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t))
	const channel = "room:lobby"
	var (
		mu            sync.Mutex
		joins, leaves []client.ClientInfo
	)
	watcher, err := client.New(client.Config{URL: c.nodes[1].URL(""), Token: clusterToken(t, "watcher")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watcher.Close() })
	wsub, err := watcher.NewSubscription(channel, client.SubscriptionConfig{
		OnJoin:  func(e client.JoinEvent) { mu.Lock(); joins = append(joins, e.Info); mu.Unlock() },
		OnLeave: func(e client.LeaveEvent) { mu.Lock(); leaves = append(leaves, e.Info); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := watcher.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wsub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}

	joined := make(chan string, 1)
	joiner, err := client.New(client.Config{URL: c.nodes[0].URL(""), Token: clusterToken(t, "bob"),
		OnConnected: func(e client.ConnectedEvent) {
			select {
			case joined <- e.ClientID:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = joiner.Close() })
	jsub, err := joiner.NewSubscription(channel, client.SubscriptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := joiner.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bob := <-joined
	if err := jsub.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	seen := func(list *[]client.ClientInfo) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, ci := range *list {
				if ci.Client == bob && ci.User == "bob" {
					return true
				}
			}
			return false
		}
	}
	testkit.WaitFor(t, 10*time.Second, "bob's join on node A pushed to the watcher on node B", seen(&joins))
	if err := jsub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "bob's leave on node A pushed to the watcher on node B", seen(&leaves))
}

// clusterPresenceTTL is short in the kill test, so the killed node's clients
// must leave presence within the test; the session heartbeats that refresh
// presence come more often still.
const clusterPresenceTTL = 5 * time.Second

// kill -9 of one node while publishing at a steady rate: its clients
// reconnect through the balancer to the others and resume; every client sees
// every acknowledged sequence number once, in order. The killed node's
// clients leave the channel's presence within presence_ttl, though no node
// said they left.
func killNode(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t), fmt.Sprintf("presence_ttl: %v\nping_interval: 2s\npong_timeout: 1500ms\nsse:\n  keep_alive: 2s\n", clusterPresenceTTL))
	const channel = "kill:main"
	clients := map[string]*recordingClient{}
	for _, tr := range sdkTransports {
		for i := range 3 {
			clients[fmt.Sprintf("%s-%d", tr, i)] = newRecordingClient(t, c.lb.URL(""), tr, channel, nil)
		}
	}
	// The publisher talks to node 0, which stays up.
	pub := startPublisher(func() string { return c.nodes[0].URL("") }, channel, 10*time.Millisecond)
	testkit.WaitFor(t, 10*time.Second, "publishing under way", func() bool { return pub.count() >= 50 })
	dead := clientsOn(t, c, channel, 2)
	if len(dead) == 0 {
		t.Fatal("no client on the node about to be killed")
	}
	t.Logf("%d of %d clients on the killed node", len(dead), len(clients))
	present := presentClients(t, c, 0, channel)
	for id := range dead {
		if !present[id] {
			t.Fatalf("client %s of the node about to be killed is not in presence %v", id, present)
		}
	}
	c.nodes[2].Kill9(t)
	killed := time.Now()
	c.lb.SetBackends(c.nodes[0].Addr, c.nodes[1].Addr)
	// Presence entries expire presence_ttl after their last refresh, which
	// was at most a heartbeat before the kill; reads may see them for a
	// moment more.
	testkit.WaitFor(t, clusterPresenceTTL+5*time.Second, "the killed node's clients to leave presence", func() bool {
		for id := range presentClients(t, c, 0, channel) {
			if dead[id] {
				return false
			}
		}
		return true
	})
	t.Logf("the killed node's %d clients left presence %v after the kill", len(dead), time.Since(killed).Round(time.Millisecond))
	testkit.WaitFor(t, 20*time.Second, "publishing after the kill", func() bool { return pub.count() >= 250 })
	waitAll(t, clients, pub.finish(t))
}

// presentClients is the client ids of channel's presence, read through node i.
func presentClients(t *testing.T, c *cluster, i int, channel string) map[string]bool {
	t.Helper()
	var pres struct {
		Clients map[string]struct{ Client string } `json:"clients"`
	}
	if err := apiCall(httpClient, c.nodes[i].URL(""), "/api/presence", map[string]string{"channel": channel}, &pres); err != nil {
		t.Fatalf("presence of %s through node %d: %v\n%s", channel, i, err, c.nodes[i].Log())
	}
	ids := make(map[string]bool, len(pres.Clients))
	for _, ci := range pres.Clients {
		ids[ci.Client] = true
	}
	return ids
}

// Every node in turn is stopped and started again under load; nothing is
// lost and nothing repeated.
func rollingRestart(t *testing.T, bin string, b broker) {
	c := startCluster(t, bin, b.start(t))
	const channel = "roll:main"
	clients := map[string]*recordingClient{}
	for _, tr := range sdkTransports {
		for i := range 2 {
			clients[fmt.Sprintf("%s-%d", tr, i)] = newRecordingClient(t, c.lb.URL(""), tr, channel, nil)
		}
	}
	pub := startPublisher(func() string { return c.lb.URL("") }, channel, 10*time.Millisecond)
	for i := range c.nodes {
		before := pub.count()
		if err := c.nodes[i].Stop(t, 20*time.Second); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		c.restart(i)
		c.waitNodes(i, 3)
		testkit.WaitFor(t, 20*time.Second, "publishing goes on", func() bool { return pub.count() >= before+50 })
	}
	waitAll(t, clients, pub.finish(t))
}

// Redis restarts empty under a running cluster: the nodes reconnect by
// themselves, publishing works again, and every client learns that its
// position can no longer be served (recovered=false) instead of being shown
// a silent gap.
func TestClusterRedisRestart(t *testing.T) {
	url, redis := testkit.StartRedis(t)
	if redis == nil {
		t.Skipf("restarts Redis: needs a redis-server of its own, not the shared one of %s", testkit.RedisEnv)
	}
	bin := testkit.BuildHerald(t)
	c := startCluster(t, bin, []string{"--engine", "redis", "--redis-url", url})
	const channel = "restart:main"
	clients := map[string]*recordingClient{}
	for _, tr := range sdkTransports {
		clients[tr.String()] = newRecordingClient(t, c.lb.URL(""), tr, channel, nil)
	}
	for i := range 20 {
		serverPublish(t, c.nodes[0].URL(""), channel, i)
	}
	for name, r := range clients {
		testkit.WaitFor(t, 20*time.Second, name+" before the restart", func() bool { return len(r.seqs()) == 20 })
	}
	redis.Restart(t)
	seq := 20
	testkit.WaitFor(t, 30*time.Second, "a publish acknowledged after Redis came back", func() bool {
		var a ack
		body := map[string]any{"channel": channel, "data": map[string]int{"seq": seq}}
		return apiCall(httpClient, c.nodes[1].URL(""), "/api/publish", body, &a) == nil
	})
	// Keep publishing until every client is back and has seen a publication
	// of the new history: each must have been told recovered=false on the way.
	testkit.WaitFor(t, 30*time.Second, "every client receiving after the restart", func() bool {
		seq++
		serverPublish(t, c.nodes[seq%3].URL(""), channel, seq)
		for _, r := range clients {
			got := r.seqs()
			if len(got) == 0 || got[len(got)-1] < 20 {
				return false
			}
		}
		return true
	})
	for name, r := range clients {
		if breaks := r.checkContinuity(t, name); breaks == 0 {
			t.Fatalf("%s: history was lost, yet no resume reported recovered=false", name)
		}
	}
}

// clientsOn is the client ids of the channel's connections that node i
// holds, as the cluster's registry reports them.
func clientsOn(t *testing.T, c *cluster, channel string, i int) map[string]bool {
	t.Helper()
	id := nodeID(t, c, i)
	var conns struct {
		Connections []struct{ Client, Node string }
	}
	if err := apiCall(httpClient, c.nodes[0].URL(""), "/api/connections", map[string]string{"channel": channel}, &conns); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, conn := range conns.Connections {
		if conn.Node == id {
			ids[conn.Client] = true
		}
	}
	return ids
}
