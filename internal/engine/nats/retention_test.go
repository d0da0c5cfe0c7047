package nats_test

import (
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// historyStream opens the history stream of prefix on srv, as an operator's
// tools would see it.
func historyStream(t *testing.T, srv *testkit.NATSServer, prefix string) jetstream.Stream {
	t.Helper()
	nc, err := natsgo.Connect(srv.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s, err := js.Stream(t.Context(), prefix+"_history")
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return s
}

// streamState is the stream's stored message count and first sequence.
func streamState(t *testing.T, s jetstream.Stream) jetstream.StreamState {
	t.Helper()
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State
}

func publishN(t *testing.T, e *nats.Engine, ch string, n int, opts engine.PublishOptions) protocol.StreamPosition {
	t.Helper()
	var pos protocol.StreamPosition
	for i := range n {
		var err error
		if pos, err = e.Publish(t.Context(), ch, fmt.Appendf(nil, `{"i":%d}`, i), opts); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	return pos
}

// TestRetentionBoundsStoredMessagesBySize publishes three times a channel's
// history size: the stream stores the newest size messages, not all of them.
func TestRetentionBoundsStoredMessagesBySize(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	e := newEngine(t, srv, nats.Config{Prefix: prefix})
	removeStreamsAfter(t, srv, prefix)
	start(t, e, "node-a")
	const size = 10
	publishN(t, e, "chat:big", 3*size, engine.PublishOptions{HistorySize: size, HistoryTTL: time.Hour})
	if got := streamState(t, historyStream(t, srv, prefix)).Msgs; got != size {
		t.Fatalf("stream holds %d messages after %d publishes to a channel of size %d, want %d", got, 3*size, size, size)
	}
}

// TestRetentionPurgesExpiredMessages: once a channel's HistoryTTL has passed,
// its next publish removes the expired messages from the stream, keeping the
// channel's offset and epoch.
func TestRetentionPurgesExpiredMessages(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	e := newEngine(t, srv, nats.Config{Prefix: prefix})
	removeStreamsAfter(t, srv, prefix)
	start(t, e, "node-a")
	const ch, n, ttl = "chat:aging", 20, 300 * time.Millisecond
	opts := engine.PublishOptions{HistorySize: 1000, HistoryTTL: ttl}
	first := publishN(t, e, ch, n, opts)
	s := historyStream(t, srv, prefix)
	if st := streamState(t, s); st.Msgs != n {
		t.Fatalf("stream holds %d messages after %d publishes within the TTL, want %d", st.Msgs, n, n)
	}
	lastOld := streamState(t, s).LastSeq

	published := n
	testkit.WaitFor(t, waitTimeout, "the expired messages to leave the stream", func() bool {
		publishN(t, e, ch, 1, opts)
		published++
		return streamState(t, s).FirstSeq > lastOld
	})
	if st := streamState(t, s); st.Msgs > uint64(published-n) {
		t.Fatalf("stream holds %d messages, more than the %d published after the expired ones", st.Msgs, published-n)
	}
	pos := publishN(t, e, ch, 1, opts)
	if pos.Epoch != first.Epoch || pos.Offset != uint64(published+1) {
		t.Fatalf("publish after the purge at %+v, want offset %d in epoch %q", pos, published+1, first.Epoch)
	}
}

// TestHistoryMaxAgeEmptiesIdleChannels: Config.HistoryMaxAge is the stream's
// age limit, so an idle channel's messages, its last one included, leave the
// stream; the channel then starts a new epoch.
func TestHistoryMaxAgeEmptiesIdleChannels(t *testing.T) {
	srv := testkit.StartNATS(t)
	prefix := testkit.NATSPrefix()
	const age = time.Second
	e := newEngine(t, srv, nats.Config{Prefix: prefix, HistoryMaxAge: age})
	removeStreamsAfter(t, srv, prefix)
	start(t, e, "node-a")
	s := historyStream(t, srv, prefix)
	if got := s.CachedInfo().Config.MaxAge; got != age {
		t.Fatalf("stream MaxAge %v, want %v", got, age)
	}
	opts := engine.PublishOptions{HistorySize: 100, HistoryTTL: age}
	before := publishN(t, e, "chat:idle", 5, opts)
	testkit.WaitFor(t, waitTimeout, "the idle channel's messages to age out", func() bool {
		return streamState(t, s).Msgs == 0
	})
	after := publishN(t, e, "chat:idle", 1, opts)
	if after.Epoch == before.Epoch || after.Offset != 1 {
		t.Fatalf("publish to an aged-out channel at %+v, want offset 1 in a new epoch (was %q)", after, before.Epoch)
	}
}
