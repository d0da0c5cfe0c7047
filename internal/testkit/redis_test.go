package testkit

import (
	"strconv"
	"strings"
	"testing"
)

func TestStartRedis(t *testing.T) {
	requireRedisBinaries(t) // before clearing RedisEnv, so that it may skip
	t.Setenv(RedisEnv, "")
	url, r := StartRedis(t)
	if url != "redis://"+r.Addr {
		t.Fatalf("URL %q does not name the server at %s", url, r.Addr)
	}
	if _, err := RedisCommand(r.Addr, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	r.FlushAll(t)
	if v, err := RedisCommand(r.Addr, "EXISTS", "k"); err != nil || v != "0" {
		t.Fatalf("EXISTS after FLUSHALL: %q, %v", v, err)
	}
	if _, err := RedisCommand(r.Addr, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	r.Restart(t)
	if v, err := RedisCommand(r.Addr, "EXISTS", "k"); err != nil || v != "0" {
		t.Fatalf("EXISTS after Restart: %q, %v; want the data gone", v, err)
	}
	if _, err := RedisCommand(r.Addr, "NOSUCHCOMMAND"); err == nil {
		t.Fatal("an unknown command did not return an error")
	}
	r.Kill(t)
	if _, err := RedisCommand(r.Addr, "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
}

func TestStartRedisFromEnv(t *testing.T) {
	t.Setenv(RedisEnv, "redis://example.invalid:6379")
	if url, r := StartRedis(t); url != "redis://example.invalid:6379" || r != nil {
		t.Fatalf("StartRedis with %s set: %q, %v; want that URL and no server", RedisEnv, url, r)
	}
}

func TestStartRedisCluster(t *testing.T) {
	url, c := StartRedisCluster(t)
	if len(c.Nodes) != 3 || strings.Count(url, "addr=") != 2 {
		t.Fatalf("cluster URL %q with %d nodes, want 3 nodes named", url, len(c.Nodes))
	}
	for _, n := range c.Nodes {
		info, err := RedisCommand(n.Addr, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
			t.Fatalf("CLUSTER INFO on %s: %v\n%s", n.Addr, err, info)
		}
	}
}

func TestStartRedisSentinel(t *testing.T) {
	url, s := StartRedisSentinel(t)
	if !strings.HasSuffix(url, "?master_set="+s.MasterSet) || !strings.Contains(url, s.Sentinel.Addr) {
		t.Fatalf("sentinel URL %q does not name sentinel %s and master set %s", url, s.Sentinel.Addr, s.MasterSet)
	}
	if role, err := RedisCommand(s.Master.Addr, "ROLE"); err != nil || !strings.HasPrefix(role, "master") {
		t.Fatalf("ROLE of the master: %q, %v", role, err)
	}
}

func TestRedisClusterMoveSlot(t *testing.T) {
	_, c := StartRedisCluster(t)
	const key = "{moved}k"
	slot, err := RedisCommand(c.Nodes[0].Addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(slot)
	owner := func() int {
		for i, node := range c.Nodes {
			if _, err := RedisCommand(node.Addr, "SET", key, "v"); err == nil {
				return i
			}
		}
		return -1
	}
	from := owner()
	if from < 0 {
		t.Fatalf("no node accepted a write to %s", key)
	}
	to := (from + 1) % len(c.Nodes)
	c.MoveSlot(t, n, to)
	if got := owner(); got != to {
		t.Fatalf("slot %d owned by node %d after moving it to %d", n, got, to)
	}
	if v, err := RedisCommand(c.Nodes[to].Addr, "GET", key); err != nil || v != "v" {
		t.Fatalf("GET %s on the new owner: %q, %v; want the moved value", key, v, err)
	}
}

// TestOwnRedisSkipsWithEnvAndNoBinaries: with only an external server
// given, the helpers that start Redis processes skip their test, saying why,
// instead of failing it.
func TestOwnRedisSkipsWithEnvAndNoBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(RedisEnv, "redis://127.0.0.1:1")
	for name, start := range map[string]func(testing.TB){
		"cluster":  func(t testing.TB) { StartRedisCluster(t) },
		"sentinel": func(t testing.TB) { StartRedisSentinel(t) },
		"tls":      func(t testing.TB) { StartRedisTLS(t) },
	} {
		var sub *testing.T
		t.Run(name, func(t *testing.T) {
			sub = t
			start(t)
		})
		if !sub.Skipped() {
			t.Errorf("%s: not skipped without redis-server in PATH and with %s set", name, RedisEnv)
		}
	}
}
