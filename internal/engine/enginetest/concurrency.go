package enginetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/testkit"
)

const (
	publishers     = 8
	perPublisher   = 500
	totalPublishes = publishers * perPublisher
)

// publishConcurrently runs the publishers, each sending perPublisher
// publications to channelFor(publisher, i), and returns the offsets each
// channel's publishes were acknowledged with.
func publishConcurrently(t *testing.T, e engine.Engine, channelFor func(p, i int) string) map[string][]uint64 {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		acks = make(map[string][]uint64)
		errs = make(chan error, publishers)
	)
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				ch := channelFor(p, i)
				pos, err := e.Publish(t.Context(), ch, fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i), stored(totalPublishes))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acks[ch] = append(acks[ch], pos.Offset)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	return acks
}

// checkChannel asserts that channel's acknowledged, stored and delivered
// offsets are each exactly 1..n: no gap, no duplicate, delivered in order.
func checkChannel(t *testing.T, e engine.Engine, rec *recorder, channel string, acked []uint64, n int) {
	t.Helper()
	want := seq(1, uint64(n))
	acked = slices.Clone(acked)
	slices.Sort(acked)
	if !slices.Equal(acked, want) {
		t.Fatalf("%s: %d acknowledged offsets are not 1..%d without gap or duplicate", channel, len(acked), n)
	}
	res := history(t, e, channel, engine.HistoryQuery{Limit: -1})
	if got := offsetsOf(res.Publications); !slices.Equal(got, want) || res.Position.Offset != uint64(n) {
		t.Fatalf("%s: history holds %d publications at offset %d, want 1..%d in order", channel, len(got), res.Position.Offset, n)
	}
	testkit.WaitFor(t, waitTimeout, fmt.Sprintf("%d deliveries on %s", n, channel), func() bool { return rec.count(channel) >= n })
	if got := deliveredOffsets(rec.published(channel)); !slices.Equal(got, want) {
		t.Fatalf("%s: %d deliveries, not 1..%d in order", channel, len(got), n)
	}
}

// testConcurrentOneChannel: concurrent publishers on one channel get every
// offset exactly once, and history and delivery follow offset order.
func (s *suite) testConcurrentOneChannel(t *testing.T) {
	e, rec := s.start(t)
	ch := channelName("concurrent")
	subscribe(t, e, ch)
	acks := publishConcurrently(t, e, func(int, int) string { return ch })
	checkChannel(t, e, rec, ch, acks[ch], totalPublishes)
}

// testConcurrentManyChannels: the same across channels, each publisher
// spreading its publications over all of them.
func (s *suite) testConcurrentManyChannels(t *testing.T) {
	e, rec := s.start(t)
	const numChannels = 4
	var channels []string
	for i := range numChannels {
		ch := channelName(fmt.Sprintf("concurrent%d", i))
		subscribe(t, e, ch)
		channels = append(channels, ch)
	}
	acks := publishConcurrently(t, e, func(p, i int) string { return channels[(p+i)%numChannels] })
	for _, ch := range channels {
		checkChannel(t, e, rec, ch, acks[ch], totalPublishes/numChannels)
	}
}
