package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "0123456789abcdef-secret"

// receiver is a real HTTP endpoint that verifies signatures and records
// every event of every request it gets, acknowledged or not, in order.
type receiver struct {
	t    testing.TB
	addr string
	srv  *httptest.Server // nil while gone
	// failRate is the fraction of requests answered 500 or cut off; down
	// fails every request.
	failRate float64
	down     atomic.Bool

	mu       sync.Mutex
	got      []Record // every event of every request, in arrival order
	acked    []Record // events of acknowledged requests
	badSigs  int
	requests int
}

func newReceiver(t testing.TB, failRate float64) *receiver {
	r := &receiver{t: t, failRate: failRate}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.addr = r.srv.Listener.Addr().String()
	t.Cleanup(func() {
		if r.srv != nil {
			r.srv.Close()
		}
	})
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

// goAway closes the receiver's listener and connections: connections are
// refused until comeBack listens on the same address again.
func (r *receiver) goAway() {
	r.srv.Close()
	r.srv = nil
}

func (r *receiver) comeBack() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var b Batch
	sigErr := Verify([]byte(testSecret), req.Header.Get(SignatureHeader), body, time.Minute, time.Now())
	decodeErr := json.Unmarshal(body, &b)
	fail := r.down.Load() || rand.Float64() < r.failRate
	r.mu.Lock()
	r.requests++
	if sigErr != nil || decodeErr != nil || req.Header.Get(CountHeader) != fmt.Sprint(len(b.Events)) {
		r.badSigs++
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// A failure after the events were read and processed is the case that
	// makes duplicates: the sender cannot tell it from one before.
	processed := !fail || rand.IntN(2) == 0
	if processed {
		r.got = append(r.got, b.Events...)
	}
	if !fail {
		r.acked = append(r.acked, b.Events...)
	}
	r.mu.Unlock()
	switch {
	case !fail:
		w.WriteHeader(http.StatusNoContent)
	case rand.IntN(2) == 0:
		// Cut the connection: the sender sees a network error.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		fallthrough
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func (r *receiver) events() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) ackedEvents() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.acked)
}

func (r *receiver) badSignatures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSigs
}

// fastConfig is a configuration with test-sized waits.
func fastConfig(dir string, endpoints ...Endpoint) Config {
	return Config{
		Dir: dir, Endpoints: endpoints, BatchSize: 20, FlushInterval: 2 * time.Millisecond,
		Timeout: 2 * time.Second, RetryMin: 5 * time.Millisecond, RetryMax: 80 * time.Millisecond,
	}
}

func startWebhooks(t testing.TB, cfg Config) *Webhooks {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() { shutdown(t, w) })
	return w
}

func shutdown(t testing.TB, w *Webhooks) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func publishEvent(channel string, offset uint64) node.Event {
	return node.Event{Type: node.EventPublish, Time: time.Now(), Node: "n1", Channel: channel, Offset: offset, Epoch: "ep",
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, offset))}
}

// dedupe keeps the first arrival of each event id, checking that every
// repeat is the same event.
func dedupe(t testing.TB, events []Record) []Record {
	t.Helper()
	seen := make(map[string]Record)
	var out []Record
	for _, e := range events {
		if prev, ok := seen[e.ID]; ok {
			if prev.Channel != e.Channel || prev.Offset != e.Offset || prev.Type != e.Type {
				t.Fatalf("id %s names two events: %+v and %+v", e.ID, prev, e)
			}
			continue
		}
		seen[e.ID] = e
		out = append(out, e)
	}
	return out
}

// A receiver that fails a third of its requests at random (500s and cut
// connections, some after processing the batch) and is gone for two seconds
// in the middle (connections refused) gets every event, repeats under the
// same id, and each channel's events in order.
func TestDeliveryThroughFailuresAndOutage(t *testing.T) {
	r := newReceiver(t, 1.0/3)
	w := startWebhooks(t, fastConfig(t.TempDir(), Endpoint{URL: r.url(), Secret: testSecret}))
	channels := []string{"a", "b", "c"}
	offset := uint64(0)
	// emitFor emits one event per channel every 5ms for d: the producer's
	// pace, not a wait for any result.
	emitFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			offset++
			for _, ch := range channels {
				w.Emit(publishEvent(ch, offset))
			}
		}
	}
	emitFor(time.Second)
	r.goAway()
	failed := w.Stats().FailedAttempts
	emitFor(2 * time.Second)
	if w.Stats().FailedAttempts == failed {
		t.Fatal("no failed attempt while the receiver was gone")
	}
	r.comeBack()
	emitFor(time.Second)
	total := int(offset) * len(channels)
	testkit.WaitFor(t, 10*time.Second, "every event acknowledged", func() bool { return w.Stats().Delivered == uint64(total) })
	all := r.events()
	events := dedupe(t, all)
	if len(events) != total {
		t.Fatalf("%d distinct events arrived, want %d", len(events), total)
	}
	next := map[string]uint64{}
	for _, e := range events {
		if e.Offset != next[e.Channel]+1 {
			t.Fatalf("channel %s: offset %d after %d", e.Channel, e.Offset, next[e.Channel])
		}
		next[e.Channel] = e.Offset
		if e.Type != "publish" || e.Node != "n1" || string(e.Data) != fmt.Sprintf(`{"n":%d}`, e.Offset) {
			t.Fatalf("event %+v", e)
		}
	}
	st := w.Stats()
	if r.badSignatures() != 0 || st.Dropped != 0 {
		t.Errorf("bad signatures %d, stats %+v", r.badSignatures(), st)
	}
	if len(all) == total {
		t.Error("no event arrived twice: the receiver's processed-then-failed answers were not exercised")
	}
	testkit.WaitFor(t, 5*time.Second, "an empty outbox", func() bool { return w.Stats().Depth == 0 })
	t.Logf("%d events, %d arrivals (%d repeats), %d failed attempts", total, len(all), len(all)-total, st.FailedAttempts)
}

// Events queued while the receiver is down survive closing and reopening
// the outbox, and arrive after with the ids they were first sent with.
func TestOutboxSurvivesRestart(t *testing.T) {
	r := newReceiver(t, 0)
	r.down.Store(true)
	dir := t.TempDir()
	cfg := fastConfig(dir, Endpoint{URL: r.url(), Secret: testSecret})
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	const n = 50
	for i := range n {
		w.Emit(publishEvent("ch", uint64(i+1)))
	}
	testkit.WaitFor(t, 5*time.Second, "events in the outbox and an attempt", func() bool {
		return w.Stats().Depth == n && len(r.events()) > 0
	})
	firstIDs := map[uint64]string{}
	for _, e := range r.events() {
		firstIDs[e.Offset] = e.ID
	}
	shutdown(t, w)

	r.down.Store(false)
	w2 := startWebhooks(t, cfg)
	testkit.WaitFor(t, 5*time.Second, "every event after the restart", func() bool { return len(dedupe(t, r.ackedEvents())) == n })
	for i, e := range dedupe(t, r.ackedEvents()) {
		if e.Offset != uint64(i+1) {
			t.Fatalf("event %d has offset %d", i, e.Offset)
		}
		if id, ok := firstIDs[e.Offset]; ok && id != e.ID {
			t.Fatalf("offset %d sent as %s, then as %s", e.Offset, id, e.ID)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "an empty outbox", func() bool { return w2.Stats().Depth == 0 })
}

// Shutdown sends what is queued before it returns when the endpoint answers.
func TestShutdownFlushes(t *testing.T) {
	r := newReceiver(t, 0)
	cfg := fastConfig("", Endpoint{URL: r.url(), Secret: testSecret})
	cfg.FlushInterval = time.Hour // only Shutdown can cut this wait short
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	for i := range 30 {
		w.Emit(publishEvent("ch", uint64(i+1)))
	}
	shutdown(t, w)
	if got := len(r.ackedEvents()); got != 30 {
		t.Fatalf("%d events delivered by shutdown, want 30", got)
	}
	w.Emit(publishEvent("ch", 31))
	if st := w.Stats(); st.Dropped != 1 {
		t.Errorf("an event after shutdown: stats %+v", st)
	}
}

// Each endpoint gets the events its type and channel filters pass, and the
// node is told nothing is wanted when no endpoint would take it.
func TestFilters(t *testing.T) {
	chat, all := newReceiver(t, 0), newReceiver(t, 0)
	w := startWebhooks(t, fastConfig("",
		Endpoint{URL: chat.url(), Secret: testSecret, Events: []string{"publish", "connect"}, Channels: []string{"chat:*"}},
		Endpoint{URL: all.url(), Secret: testSecret, Events: []string{"publish", "subscribe", "connect"}},
	))
	if w.Wants(node.EventOccupied, "chat:a") || !w.Wants(node.EventPublish, "news") || !w.Wants(node.EventConnect, "") {
		t.Error("Wants disagrees with the endpoints' filters")
	}
	w.Emit(node.Event{Type: node.EventConnect, Client: "c1"})
	w.Emit(publishEvent("chat:a", 1))
	w.Emit(publishEvent("news", 1))
	w.Emit(node.Event{Type: node.EventSubscribe, Channel: "chat:a", Client: "c1"})
	w.Emit(publishEvent("chat:b", 1))
	testkit.WaitFor(t, 5*time.Second, "both endpoints' events", func() bool {
		return len(chat.ackedEvents()) == 3 && len(all.ackedEvents()) == 5
	})
	var got []string
	for _, e := range chat.ackedEvents() {
		got = append(got, e.Type+" "+e.Channel)
	}
	if want := []string{"connect ", "publish chat:a", "publish chat:b"}; !slices.Equal(got, want) {
		t.Errorf("chat endpoint got %q, want %q", got, want)
	}
}

// downReceiverOutbox starts webhooks holding at most maxEvents, sending to
// a receiver that is down until the test brings it up.
func downReceiverOutbox(t *testing.T, maxEvents int) (*receiver, *Webhooks) {
	t.Helper()
	r := newReceiver(t, 0)
	r.down.Store(true)
	cfg := fastConfig("", Endpoint{URL: r.url(), Secret: testSecret})
	cfg.MaxEvents = maxEvents
	return r, startWebhooks(t, cfg)
}

// Beyond its bound the outbox refuses events, counts them, and tells every
// endpoint how many it lost, in order, once there is room again: a gap is
// never silent.
func TestOverflow(t *testing.T) {
	r, w := downReceiverOutbox(t, 10)
	const n = 15
	for i := range n {
		w.Emit(publishEvent("ch", uint64(i+1)))
	}
	testkit.WaitFor(t, 5*time.Second, "every event queued or refused", func() bool {
		st := w.Stats()
		return len(w.in) == 0 && st.Depth+int(st.Dropped) >= n
	})
	if d := w.Stats().Dropped; d < n-10 {
		t.Fatalf("%d events refused, want at least %d", d, n-10)
	}
	r.down.Store(false)
	testkit.WaitFor(t, 5*time.Second, "an empty outbox", func() bool { return len(w.in) == 0 && w.Stats().Depth == 0 })
	w.Emit(publishEvent("ch", 100))
	testkit.WaitFor(t, 5*time.Second, "the event after the overflow", func() bool {
		got := r.ackedEvents()
		return len(got) > 0 && got[len(got)-1].Offset == 100
	})
	got := r.ackedEvents()
	var reported, delivered uint64
	last := uint64(0)
	for _, e := range got[:len(got)-1] {
		switch e.Type {
		case TypeOverflow:
			reported += e.Dropped
		case "publish":
			if e.Offset <= last {
				t.Fatalf("offset %d after %d", e.Offset, last)
			}
			last = e.Offset
			delivered++
		}
	}
	st := w.Stats()
	if reported != st.Dropped || delivered+st.Dropped != n || got[len(got)-2].Type != TypeOverflow {
		t.Fatalf("%d delivered, %d reported lost, stats %+v; events %+v", delivered, reported, st, got)
	}
}

// A full outbox stays within its bound however many writes refuse events:
// the overflow event waits for room like any other.
func TestOverflowKeepsBound(t *testing.T) {
	const maxEvents, n = 3, 10
	_, w := downReceiverOutbox(t, maxEvents)
	for i := range n {
		// One write per event, so each refusal is seen by a later write.
		w.Emit(publishEvent("ch", uint64(i+1)))
		testkit.WaitFor(t, 5*time.Second, "the event queued or refused", func() bool {
			st := w.Stats()
			return len(w.in) == 0 && st.Depth+int(st.Dropped) >= i+1
		})
	}
	if st := w.Stats(); st.Depth > maxEvents || st.Dropped != n-maxEvents {
		t.Fatalf("stats %+v with max_events %d after %d events", st, maxEvents, n)
	}
}

func TestNewRefusesBadEndpoints(t *testing.T) {
	for _, e := range []Endpoint{
		{URL: "ftp://x", Secret: testSecret},
		{URL: "http://x", Secret: "short"},
		{URL: "http://x", Secret: testSecret, Events: []string{"publish", "nope"}},
		{URL: "http://x", Secret: testSecret, Channels: []string{"chat:["}},
	} {
		if w, err := New(Config{Endpoints: []Endpoint{e}}); err == nil {
			shutdown(t, w)
			t.Errorf("%+v accepted", e)
		}
	}
	if _, err := New(Config{Endpoints: []Endpoint{{URL: "http://x", Secret: testSecret}, {URL: "http://x", Secret: testSecret}}}); err == nil {
		t.Error("a URL listed twice accepted")
	}
}

// BenchmarkDelivery measures events through a durable outbox to a local
// receiver: emitted, synced, batched, signed, posted and acknowledged.
func BenchmarkDelivery(b *testing.B) {
	r := newReceiver(b, 0)
	cfg := fastConfig(b.TempDir(), Endpoint{URL: r.url(), Secret: testSecret})
	cfg.BatchSize = 100
	cfg.Buffer = 1 << 16
	w := startWebhooks(b, cfg)
	b.ResetTimer()
	for i := range b.N {
		w.Emit(publishEvent("ch", uint64(i+1)))
		if i%4096 == 4095 {
			// Keep the buffer from overflowing: wait for the writer.
			testkit.WaitFor(b, 10*time.Second, "the writer", func() bool { return len(w.in) < 1024 })
		}
	}
	testkit.WaitFor(b, time.Minute, "every event delivered", func() bool { return w.Stats().Delivered == uint64(b.N) })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Emit never waits: with the writer not running, events beyond the buffer
// are refused at once, and reported once the writer runs.
func TestEmitNeverBlocks(t *testing.T) {
	r := newReceiver(t, 0)
	cfg := fastConfig("", Endpoint{URL: r.url(), Secret: testSecret})
	cfg.Buffer = 8
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, w) })
	for i := range 13 {
		w.Emit(publishEvent("ch", uint64(i+1)))
	}
	if d := w.Stats().Dropped; d != 5 {
		t.Fatalf("%d refused, want 5", d)
	}
	w.Start()
	testkit.WaitFor(t, 5*time.Second, "the buffered events and the report", func() bool { return len(r.ackedEvents()) == 9 })
	got := r.ackedEvents()
	if got[0].Type != TypeOverflow || got[0].Dropped != 5 || got[1].Offset != 1 || got[8].Offset != 8 {
		t.Fatalf("events %+v", got)
	}
}
