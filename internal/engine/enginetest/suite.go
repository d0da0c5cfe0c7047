// Package enginetest is the conformance suite every engine passes: ordering,
// offsets, epochs, history reads, retention, idempotency, concurrent
// publishers, presence, the control bus and lifecycle. An engine's test calls
// Run with a constructor; scenarios that need more than a fresh engine
// (presence expiry, reopening persistent data) run when their Option is given.
//
// Every wait is a condition polled against a deadline. Checks that something
// does not happen can only watch for a window; they never decide success of a
// positive check.
package enginetest

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// waitTimeout bounds every condition wait; it is generous because the suite
// runs under -race on small machines.
const waitTimeout = 15 * time.Second

// quietWindow is how long a negative check watches for a delivery that must
// not happen.
const quietWindow = 200 * time.Millisecond

// nodeID is the node id the suite starts engines with.
const nodeID = "enginetest-node"

// Reopener opens an engine over the persistent data named by dir, a fresh
// directory from t.TempDir() on first use. An engine opened on a dir after
// the previous engine on it was closed must see that engine's history,
// offsets, epochs and idempotency keys. Engines that do not store in a
// directory can use dir as the unique name of a data set.
type Reopener func(t *testing.T, dir string) engine.Engine

// Option enables optional scenarios of Run.
type Option func(*suite)

// PresenceExpiry enables the presence-expiry scenario: newEngine must make
// engines whose presence TTL is ttl. Keep ttl short (a second or less): the
// scenario waits for entries to expire.
func PresenceExpiry(ttl time.Duration, newEngine func(t *testing.T) engine.Engine) Option {
	return func(s *suite) {
		s.presenceTTL = ttl
		s.newShortPresence = newEngine
	}
}

// Persistent enables the scenarios for engines whose data outlives Close:
// reopening keeps history, offsets, epochs and idempotency keys, and a fresh
// data set gives new epochs.
func Persistent(open Reopener) Option {
	return func(s *suite) { s.reopen = open }
}

type suite struct {
	newEngine        func(t *testing.T) engine.Engine
	presenceTTL      time.Duration
	newShortPresence func(t *testing.T) engine.Engine
	reopen           Reopener
}

type scenario struct {
	name string
	run  func(t *testing.T)
}

// Run runs every scenario as a subtest. newEngine returns a new, not yet
// started engine; the suite starts it, and closes it when the subtest ends.
// Channel names are unique per subtest, so engines sharing a backend server
// do not see each other's data.
func Run(t *testing.T, newEngine func(t *testing.T) engine.Engine, opts ...Option) {
	s := &suite{newEngine: newEngine}
	for _, o := range opts {
		o(s)
	}
	scenarios := []scenario{
		{"OffsetsStartAtOne", s.testOffsets},
		{"EphemeralNotStored", s.testEphemeral},
		{"DeliveryOrderAndUnsubscribe", s.testDelivery},
		{"EpochStable", s.testEpoch},
		{"NewChannelPosition", s.testNewChannelPosition},
		{"SubscribeThenHistoryNoGap", s.testSubscribeThenHistory},
		{"HistoryQueries", s.testHistoryQueries},
		{"RetentionBySize", s.testRetentionBySize},
		{"RetentionByAge", s.testRetentionByAge},
		{"RemoveHistory", s.testRemoveHistory},
		{"Idempotency", s.testIdempotency},
		{"IdempotencyExpires", s.testIdempotencyExpires},
		{"ConcurrentPublishersOneChannel", s.testConcurrentOneChannel},
		{"ConcurrentPublishersManyChannels", s.testConcurrentManyChannels},
		{"JoinLeave", s.testJoinLeave},
		{"Presence", s.testPresence},
		{"ControlBus", s.testControl},
		{"ClosedEngine", s.testClosed},
		{"NoGoroutineLeak", s.testNoLeak},
	}
	if s.newShortPresence != nil {
		scenarios = append(scenarios, scenario{"PresenceExpiry", s.testPresenceExpiry})
	}
	if s.reopen != nil {
		scenarios = append(scenarios,
			scenario{"ReopenKeepsState", s.testReopen},
			scenario{"FreshDataNewEpoch", s.testFreshDataNewEpoch},
		)
	}
	for _, sc := range scenarios {
		t.Run(sc.name, sc.run)
	}
}

// start makes a fresh engine and starts it with a recording handler.
func (s *suite) start(t *testing.T) (engine.Engine, *recorder) {
	t.Helper()
	return startEngine(t, s.newEngine(t))
}

// startEngine starts e with a new recorder, closes e when the test ends and
// then reports any Handler contract violation the recorder saw.
func startEngine(t *testing.T, e engine.Engine) (engine.Engine, *recorder) {
	t.Helper()
	rec := newRecorder()
	t.Cleanup(func() { rec.report(t) })                     // runs after the Close below
	t.Cleanup(func() { _ = e.Close(context.Background()) }) // Close twice is allowed
	if err := e.Start(t.Context(), nodeID, rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e, rec
}

// channelName returns a channel name unique to this run.
func channelName(base string) string {
	return "enginetest:" + base + "-" + strings.ToLower(rand.Text()[:8])
}

func publish(t *testing.T, e engine.Engine, channel, data string, opts engine.PublishOptions) protocol.StreamPosition {
	t.Helper()
	pos, err := e.Publish(t.Context(), channel, []byte(data), opts)
	if err != nil {
		t.Fatalf("Publish(%s, %s): %v", channel, data, err)
	}
	return pos
}

func history(t *testing.T, e engine.Engine, channel string, q engine.HistoryQuery) engine.HistoryResult {
	t.Helper()
	res, err := e.History(t.Context(), channel, q)
	if err != nil {
		t.Fatalf("History(%s, %+v): %v", channel, q, err)
	}
	return res
}

func subscribe(t *testing.T, e engine.Engine, channel string) {
	t.Helper()
	if err := e.Subscribe(t.Context(), channel); err != nil {
		t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

// stored are options that keep a publication in a history of size n.
func stored(n int) engine.PublishOptions {
	return engine.PublishOptions{HistorySize: n}
}

// never fails the test if cond holds at any poll during quietWindow.
func never(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(quietWindow)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("unexpected: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// offsetsOf lists the offsets of pubs, in order.
func offsetsOf(pubs []*protocol.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// seq returns the offsets from..to inclusive, descending if from > to.
func seq(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for o := from; o <= to; o++ {
			out = append(out, o)
		}
		return out
	}
	for o := from; ; o-- {
		out = append(out, o)
		if o == to {
			return out
		}
	}
}

// firstDifference returns the first index at which got and want differ, or
// -1 if they are equal. Failure messages cite it rather than print thousands
// of offsets.
func firstDifference(got, want []uint64) int {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return i
		}
	}
	if len(got) != len(want) {
		return min(len(got), len(want))
	}
	return -1
}

// Discard is a Handler that drops every delivery: what a benchmark of an
// engine's publish path subscribes, so delivery runs but costs nothing more.
type Discard struct{}

func (Discard) HandlePublication(*protocol.Publication, string) {}
func (Discard) HandleJoin(string, protocol.ClientInfo)          {}
func (Discard) HandleLeave(string, protocol.ClientInfo)         {}
func (Discard) HandleControl([]byte)                            {}
