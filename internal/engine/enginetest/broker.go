package enginetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// testOffsets: a channel's first stored publication has offset 1 and each
// later one the next integer, all in one valid epoch.
func (s *suite) testOffsets(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("offsets")
	var epoch string
	for i := uint64(1); i <= 5; i++ {
		pos := publish(t, e, ch, fmt.Sprintf(`{"n":%d}`, i), stored(10))
		if pos.Offset != i {
			t.Fatalf("publish %d: offset %d, want %d", i, pos.Offset, i)
		}
		if i == 1 {
			epoch = pos.Epoch
		}
		if !protocol.ValidEpoch(pos.Epoch) || pos.Epoch != epoch {
			t.Fatalf("publish %d: epoch %q, want the valid epoch %q of the first publish", i, pos.Epoch, epoch)
		}
	}
}

// testEphemeral: HistorySize 0 stores nothing and takes no offset, but the
// publication is still delivered.
func (s *suite) testEphemeral(t *testing.T) {
	e, rec := s.start(t)
	ch := channelName("ephemeral")
	subscribe(t, e, ch)

	pos := publish(t, e, ch, `{"typing":true}`, engine.PublishOptions{})
	if pos != (protocol.StreamPosition{}) {
		t.Fatalf("ephemeral publish returned %+v, want the zero position", pos)
	}
	testkit.WaitFor(t, waitTimeout, "ephemeral delivery", func() bool { return rec.count(ch) == 1 })
	d := rec.published(ch)[0]
	if d.pub.Offset != 0 || d.epoch != "" || string(d.pub.Data) != `{"typing":true}` {
		t.Fatalf("delivered offset %d epoch %q data %s; want 0, \"\", the data", d.pub.Offset, d.epoch, d.pub.Data)
	}
	res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if len(res.Publications) != 0 || res.Position.Offset != 0 {
		t.Fatalf("history after ephemeral publish: %d publications at offset %d, want none at 0",
			len(res.Publications), res.Position.Offset)
	}
	if pos := publish(t, e, ch, `{"n":1}`, stored(10)); pos.Offset != 1 {
		t.Fatalf("first stored publish after an ephemeral one: offset %d, want 1", pos.Offset)
	}
}

// testDelivery: a subscribed channel's publications reach the handler in
// offset order with their epoch and data; other channels' do not, nor do
// publications made after Unsubscribe.
func (s *suite) testDelivery(t *testing.T) {
	e, rec := s.start(t)
	a, b, c := channelName("a"), channelName("b"), channelName("c")
	subscribe(t, e, a)

	const n = 50
	var epoch string
	for i := 1; i <= n; i++ {
		epoch = publish(t, e, a, fmt.Sprintf(`{"n":%d}`, i), stored(100)).Epoch
		publish(t, e, b, fmt.Sprintf(`{"n":%d}`, i), stored(100))
	}
	testkit.WaitFor(t, waitTimeout, "deliveries on the subscribed channel", func() bool { return rec.count(a) == n })
	for i, d := range rec.published(a) {
		want := fmt.Sprintf(`{"n":%d}`, i+1)
		if d.pub.Offset != uint64(i+1) || d.epoch != epoch || string(d.pub.Data) != want || d.pub.Channel != a {
			t.Fatalf("delivery %d: %s offset %d epoch %q data %s; want %s offset %d epoch %q data %s",
				i, d.pub.Channel, d.pub.Offset, d.epoch, d.pub.Data, a, i+1, epoch, want)
		}
		if d.pub.Time == 0 {
			t.Fatalf("delivery %d has no time", i)
		}
	}

	if err := e.Unsubscribe(t.Context(), a); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(t, e, a, `{"after":"unsubscribe"}`, stored(100))
	subscribe(t, e, c)
	publish(t, e, c, `{"n":1}`, stored(100))
	testkit.WaitFor(t, waitTimeout, "delivery on a newly subscribed channel", func() bool { return rec.count(c) == 1 })
	never(t, "delivery on an unsubscribed channel", func() bool { return rec.count(a) != n || rec.count(b) != 0 })
}

// testEpoch: the epoch is valid and stays the same across publishes, reads
// and history removal.
func (s *suite) testEpoch(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("epoch")
	epoch := publish(t, e, ch, `{}`, stored(10)).Epoch
	if !protocol.ValidEpoch(epoch) {
		t.Fatalf("epoch %q is not valid", epoch)
	}
	check := func(when, got string) {
		t.Helper()
		if got != epoch {
			t.Fatalf("epoch %s is %q, was %q", when, got, epoch)
		}
	}
	for range 10 {
		check("after another publish", publish(t, e, ch, `{}`, stored(10)).Epoch)
	}
	check("in history", history(t, e, ch, engine.HistoryQuery{}).Position.Epoch)
	if err := e.RemoveHistory(t.Context(), ch); err != nil {
		t.Fatalf("RemoveHistory: %v", err)
	}
	check("after RemoveHistory", history(t, e, ch, engine.HistoryQuery{}).Position.Epoch)
	check("on the next publish", publish(t, e, ch, `{}`, stored(10)).Epoch)
}

// testNewChannelPosition: a never-published channel is at offset 0 in a
// valid epoch, which the next read and the first publish keep.
func (s *suite) testNewChannelPosition(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("new")
	first := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if first.Position.Offset != 0 || !protocol.ValidEpoch(first.Position.Epoch) || len(first.Publications) != 0 {
		t.Fatalf("new channel: position %+v with %d publications; want offset 0, a valid epoch, none",
			first.Position, len(first.Publications))
	}
	if again := history(t, e, ch, engine.HistoryQuery{}).Position; again != first.Position {
		t.Fatalf("second read: position %+v, first was %+v", again, first.Position)
	}
	if pos := publish(t, e, ch, `{}`, stored(10)); pos != (protocol.StreamPosition{Epoch: first.Position.Epoch, Offset: 1}) {
		t.Fatalf("first publish: position %+v, want offset 1 in epoch %q", pos, first.Position.Epoch)
	}
}

// testSubscribeThenHistory is the recovery race at engine level: with
// publishers running, Subscribe then read history; every publication after
// the read position must then be delivered, so history plus deliveries leave
// no gap.
func (s *suite) testSubscribeThenHistory(t *testing.T) {
	e, rec := s.start(t)
	ch := channelName("recover")
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		errs = make(chan error, 4)
		mu   sync.Mutex
		top  uint64 // highest offset acknowledged so far
	)
	acked := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return top
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				pos, err := e.Publish(t.Context(), ch, []byte(`{}`), stored(100000))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				top = max(top, pos.Offset)
				mu.Unlock()
			}
		})
	}
	testkit.WaitFor(t, waitTimeout, "some publications", func() bool { return acked() >= 50 })
	subscribe(t, e, ch)
	hist := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	testkit.WaitFor(t, waitTimeout, "publications after the history read", func() bool { return acked() >= hist.Position.Offset+50 })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	final := acked()

	if got, want := offsetsOf(hist.Publications), seq(1, hist.Position.Offset); !slices.Equal(got, want) {
		t.Fatalf("history holds %d publications, want 1..%d in order", len(got), hist.Position.Offset)
	}
	after := func() []uint64 {
		var live []uint64
		for _, d := range rec.published(ch) {
			if d.pub.Offset > hist.Position.Offset {
				live = append(live, d.pub.Offset)
			}
		}
		return live
	}
	testkit.WaitFor(t, waitTimeout, "delivery of every publication after the history read", func() bool {
		return uint64(len(after())) >= final-hist.Position.Offset
	})
	live, want := after(), seq(hist.Position.Offset+1, final)
	if i := firstDifference(live, want); i >= 0 {
		t.Fatalf("after history position %d: %d deliveries, want %d..%d with no gap; first difference at index %d",
			hist.Position.Offset, len(live), hist.Position.Offset+1, final, i)
	}
}
