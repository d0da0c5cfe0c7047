package redis_test

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/redis"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// presenceTTL is the short presence TTL of the expiry scenario.
const presenceTTL = 500 * time.Millisecond

// newEngine returns an engine on url with a key prefix of its own, so
// engines sharing a server never see each other's keys.
func newEngine(t *testing.T, url string, presence time.Duration) *redis.Engine {
	t.Helper()
	e, err := redis.New(redis.Config{URL: url, Prefix: testPrefix(), PresenceTTL: presence})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func testPrefix() string {
	return "herald-test-" + strings.ToLower(rand.Text()[:8])
}

func runConformance(t *testing.T, url string) {
	enginetest.Run(t,
		func(t *testing.T) engine.Engine { return newEngine(t, url, 0) },
		enginetest.PresenceExpiry(presenceTTL, func(t *testing.T) engine.Engine { return newEngine(t, url, presenceTTL) }),
	)
}

// newClassicEngine is newEngine for the classic pub/sub of Redis 6.
func newClassicEngine(t *testing.T, url string, presence time.Duration) *redis.Engine {
	t.Helper()
	e, err := redis.NewClassicPubSub(redis.Config{URL: url, Prefix: testPrefix(), PresenceTTL: presence})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestConformance(t *testing.T) {
	t.Run("Standalone", func(t *testing.T) {
		url, _ := testkit.StartRedis(t)
		runConformance(t, url)
		t.Run("ClassicPubSub", func(t *testing.T) {
			enginetest.Run(t, func(t *testing.T) engine.Engine { return newClassicEngine(t, url, 0) })
		})
	})
	t.Run("Cluster", func(t *testing.T) {
		url, c := testkit.StartRedisCluster(t)
		runConformance(t, url)
		t.Run("SlotMigration", func(t *testing.T) { testSlotMigration(t, url, c) })
	})
	t.Run("Sentinel", func(t *testing.T) {
		url, _ := testkit.StartRedisSentinel(t)
		runConformance(t, url)
	})
	t.Run("TLS", func(t *testing.T) {
		url, _ := testkit.StartRedisTLS(t)
		runConformance(t, url)
	})
}

// TestSubscribeRefused: a subscription Redis refuses fails Subscribe at
// once, with Redis's reason, rather than waiting for the context.
func TestSubscribeRefused(t *testing.T) {
	url, r := testkit.StartRedis(t)
	if r == nil {
		t.Skipf("changes users: needs a redis-server of its own, not %s", testkit.RedisEnv)
	}
	if _, err := testkit.RedisCommand(r.Addr, "ACL", "SETUSER", "nosub", "on", ">pw", "~*", "&*", "+@all", "-ssubscribe"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	e, _ := startEngine(t, strings.Replace(url, "redis://", "redis://nosub:pw@", 1))
	err := e.Subscribe(t.Context(), "test:refused")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Subscribe without permission: %v, want Redis's NOPERM error", err)
	}
}

// TestKeysExpire: every key the engine writes has a TTL, so abandoned
// channels do not hold memory for ever.
func TestKeysExpire(t *testing.T) {
	url, r := testkit.StartRedis(t)
	if r == nil {
		t.Skipf("lists every key: needs a redis-server of its own, not %s", testkit.RedisEnv)
	}
	e, _ := startEngine(t, url)
	ctx := t.Context()
	const ch = "test:ttl"
	if _, err := e.Publish(ctx, ch, []byte(`{}`), engine.PublishOptions{HistorySize: 10, IdempotencyKey: "k"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := e.History(ctx, "test:read-only", engine.HistoryQuery{}); err != nil {
		t.Fatalf("History: %v", err)
	}
	for _, c := range []protocol.ClientInfo{{Client: "c1", User: "u1"}, {Client: "c2"}} {
		if err := e.AddPresence(ctx, ch, c); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	keys, err := testkit.RedisCommand(r.Addr, "KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(keys, "\n")
	if len(names) != 8 { // meta, history, idempotency key, 4 presence keys; the read channel's meta
		t.Errorf("keys %q, want 8", names)
	}
	for _, k := range names {
		ttl, err := testkit.RedisCommand(r.Addr, "PTTL", k)
		if n, _ := strconv.Atoi(ttl); err != nil || n <= 0 {
			t.Errorf("key %s has PTTL %s (%v), want a positive TTL", k, ttl, err)
		}
	}
}

// TestPresenceUserChange: a client re-added under another user, or first
// anonymous and then signed in, moves between users in the counts.
func TestPresenceUserChange(t *testing.T) {
	url, _ := testkit.StartRedis(t)
	e, _ := startEngine(t, url)
	ctx := t.Context()
	const ch = "test:presence-users"
	steps := []struct {
		add, remove string
		user        string
		want        engine.PresenceStats
	}{
		{add: "c1", user: "u1", want: engine.PresenceStats{NumClients: 1, NumUsers: 1}},
		{add: "c1", user: "u2", want: engine.PresenceStats{NumClients: 1, NumUsers: 1}},
		{add: "c2", user: "", want: engine.PresenceStats{NumClients: 2, NumUsers: 1}},
		{add: "c2", user: "u2", want: engine.PresenceStats{NumClients: 2, NumUsers: 1}},
		{add: "c3", user: "u3", want: engine.PresenceStats{NumClients: 3, NumUsers: 2}},
		{add: "c3", user: "", want: engine.PresenceStats{NumClients: 3, NumUsers: 1}},
		{remove: "c1", want: engine.PresenceStats{NumClients: 2, NumUsers: 1}},
		{remove: "c2", want: engine.PresenceStats{NumClients: 1, NumUsers: 0}},
		{remove: "c3", want: engine.PresenceStats{}},
	}
	for i, s := range steps {
		var err error
		if s.add != "" {
			err = e.AddPresence(ctx, ch, protocol.ClientInfo{Client: s.add, User: s.user})
		} else {
			err = e.RemovePresence(ctx, ch, s.remove)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		st, err := e.PresenceStats(ctx, ch)
		if err != nil || st != s.want {
			t.Fatalf("step %d (%+v): stats %+v, %v; want %+v", i, s, st, err, s.want)
		}
	}
	if p, err := e.Presence(ctx, ch); err != nil || len(p) != 0 {
		t.Fatalf("presence after removing everyone: %v, %v", p, err)
	}
}
