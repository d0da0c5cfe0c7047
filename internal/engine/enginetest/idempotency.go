package enginetest

import (
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/testkit"
)

func keyed(key string, ttl time.Duration) engine.PublishOptions {
	return engine.PublishOptions{HistorySize: 100, IdempotencyKey: key, IdempotencyTTL: ttl}
}

// testIdempotency: a repeated key within its TTL returns the first position
// and is stored and delivered once; another key publishes anew.
func (s *suite) testIdempotency(t *testing.T) {
	e, rec := s.start(t)
	ch := channelName("idem")
	subscribe(t, e, ch)

	first := publish(t, e, ch, `{"try":1}`, keyed("k1", time.Minute))
	again := publish(t, e, ch, `{"try":2}`, keyed("k1", time.Minute))
	if again != first {
		t.Fatalf("repeated key: position %+v, first publish got %+v", again, first)
	}
	other := publish(t, e, ch, `{"try":3}`, keyed("k2", time.Minute))
	if other.Offset != first.Offset+1 || other.Epoch != first.Epoch {
		t.Fatalf("new key: position %+v, want offset %d in epoch %q", other, first.Offset+1, first.Epoch)
	}

	res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if got := offsetsOf(res.Publications); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("history offsets %v, want [1 2]", got)
	}
	if d := string(res.Publications[0].Data); d != `{"try":1}` {
		t.Fatalf("stored data %s, want the first publish's", d)
	}
	// Deliveries follow offset order, so once offset 2 has arrived a
	// duplicate of offset 1 would have too.
	testkit.WaitFor(t, waitTimeout, "delivery of the second key", func() bool {
		ds := rec.published(ch)
		return len(ds) > 0 && ds[len(ds)-1].pub.Offset == 2
	})
	if got := deliveredOffsets(rec.published(ch)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("delivered offsets %v, want [1 2]", got)
	}
}

// testIdempotencyExpires: after IdempotencyTTL the same key publishes anew.
// Repeats before expiry return the first position without storing, so
// polling with the key is harmless.
func (s *suite) testIdempotencyExpires(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("idem-ttl")
	opts := keyed("k", 200*time.Millisecond)
	first := publish(t, e, ch, `{}`, opts)
	var next uint64
	testkit.WaitFor(t, waitTimeout, "the idempotency key to expire", func() bool {
		next = publish(t, e, ch, `{}`, opts).Offset
		return next != first.Offset
	})
	if next != first.Offset+1 {
		t.Fatalf("publish after key expiry: offset %d, want %d", next, first.Offset+1)
	}
}
