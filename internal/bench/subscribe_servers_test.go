package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
	"github.com/heraldrt/herald/internal/testkit"
)

// startClusterNode runs an in-process server on the redis engine at
// redisURL under prefix, so servers started with the same ones form a
// cluster, with startServer's "bench" namespace.
func startClusterNode(t *testing.T, redisURL, prefix string) string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine, cfg.RedisURL, cfg.EnginePrefix = server.EngineRedis, redisURL, prefix
	cfg.ConnectionRate = 0
	cfg.APIKey = testAPIKey
	cfg.LogLevel = "error"
	cfg.AllowAnonymous = true
	cfg.Namespaces = []node.NamespaceOptions{{
		Name:        "bench",
		HistorySize: 1000,
		HistoryTTL:  time.Hour,
		Subscribe:   node.AccessAnyone,
	}}
	return servertest.Start(t, cfg).URL
}

// ownClients is how many clients the server at base reports holding itself.
func ownClients(t *testing.T, base string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/info", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "apikey "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var info struct {
		Node  string `json:"node"`
		Nodes []struct {
			ID         string `json:"id"`
			NumClients int    `json:"num_clients"`
		} `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return -1
	}
	for _, n := range info.Nodes {
		if n.ID == info.Node {
			return n.NumClients
		}
	}
	return -1
}

// TestSubscribeServersAcrossTwoNodes runs what `herald bench fanout
// --subscribe-servers A,B` runs: the subscribers, in worker processes of
// the herald binary, are spread over two servers sharing one Redis, the
// publisher publishes on the first, and every subscriber on either node
// receives every publication.
func TestSubscribeServersAcrossTwoNodes(t *testing.T) {
	redisURL, _ := testkit.StartRedis(t)
	prefix := "bench-" + strings.ToLower(testkit.NATSPrefix())
	a, b := startClusterNode(t, redisURL, prefix), startClusterNode(t, redisURL, prefix)
	bin := testkit.BuildHerald(t)

	const subscribers = 40
	// Workers write their stderr to Log from goroutines of their own.
	var log testkit.LockedBuffer
	cfg := Config{
		Server: a, SubscribeServers: []string{a, b}, APIKey: testAPIKey,
		Connections: subscribers, Rate: 100, Duration: 2 * time.Second, Warmup: 0,
		Executable: bin, Log: &log,
	}
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(context.Background(), ScenarioFanout, cfg)
		done <- outcome{res, err}
	}()
	// While the run publishes, each node holds its half of the subscribers.
	// A run that ends first, failed or too soon, is reported as such.
	testkit.WaitFor(t, 30*time.Second, "each node to hold half the subscribers", func() bool {
		select {
		case out := <-done:
			t.Fatalf("run ended before both nodes held half the subscribers: %v\n%s", out.err, log.String())
		default:
		}
		return ownClients(t, a) == subscribers/2 && ownClients(t, b) == subscribers/2
	})
	out := <-done
	if out.err != nil {
		t.Fatalf("Run: %v\n%s", out.err, log.String())
	}
	res := out.res
	if res.Procs != 2 || len(res.SubscribeServers) != 2 || res.Connected != subscribers || res.ConnectFailures != 0 {
		t.Errorf("procs %d, subscribe servers %v, connected %d, failed %d; want 2 workers on both nodes, all %d connected",
			res.Procs, res.SubscribeServers, res.Connected, res.ConnectFailures, subscribers)
	}
	if res.Published == 0 || res.Expected != res.Published*subscribers || res.Deliveries != res.Expected ||
		res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.ErrorCount != 0 {
		t.Errorf("published %d: deliveries %d of %d expected, lost %d, duplicated %d, out of order %d, errors %v\n%s",
			res.Published, res.Deliveries, res.Expected, res.Lost, res.Duplicated, res.OutOfOrder, res.Errors, log.String())
	}
}
