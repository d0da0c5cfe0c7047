package redis_test

import (
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestSentinelFailover: when Sentinel promotes the replica, the engine
// follows it by itself: once the old master is demoted, publishing resumes
// on the new master in the same epoch, at the next offset (the replica had
// everything), and the subscribed channel is resynced and delivered to
// again.
func TestSentinelFailover(t *testing.T) {
	url, s := testkit.StartRedisSentinel(t)
	replica := s.AddReplica(t)
	e, h := startEngine(t, url)
	const ch = "test:failover"
	if err := e.Subscribe(t.Context(), ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	before := publish(t, e, ch)
	testkit.WaitFor(t, waitTimeout, "delivery before the failover", func() bool { return h.Delivered(ch, before) })

	s.Failover(t, replica)
	var after protocol.StreamPosition
	testkit.WaitFor(t, waitTimeout, "a publish to succeed after the failover", func() bool {
		var err error
		after, err = e.Publish(t.Context(), ch, []byte(`{}`), engine.PublishOptions{HistorySize: 10})
		return err == nil
	})
	if after != (protocol.StreamPosition{Epoch: before.Epoch, Offset: before.Offset + 1}) {
		t.Fatalf("first publish after the failover at %+v, want offset %d in epoch %q", after, before.Offset+1, before.Epoch)
	}
	if role, err := testkit.RedisCommand(replica.Addr, "ROLE"); err != nil || !strings.HasPrefix(role, "master") {
		t.Fatalf("the publish did not land on the promoted replica: its role is %q (%v)", role, err)
	}
	testkit.WaitFor(t, waitTimeout, "the channel resynced after the failover", func() bool { return h.Resyncs(ch) > 0 })
	testkit.WaitFor(t, waitTimeout, "delivery after the failover", func() bool { return h.Delivered(ch, after) })
	hist, err := e.History(t.Context(), ch, engine.HistoryQuery{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if hist.Position != after || len(hist.Publications) != 2 {
		t.Fatalf("history after the failover: %d publications at %+v, want 2 at %+v", len(hist.Publications), hist.Position, after)
	}
}
