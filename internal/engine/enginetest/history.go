package enginetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// testHistoryQueries covers Since, Limit and Reverse, and that a stored
// publication comes back whole.
func (s *suite) testHistoryQueries(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("history")
	info := &protocol.ClientInfo{Client: "c1", User: "u1", Info: json.RawMessage(`{"name":"ann"}`)}
	tags := map[string]string{"kind": "greeting"}
	var pos protocol.StreamPosition
	for i := 1; i <= 10; i++ {
		opts := stored(100)
		if i == 1 {
			opts.Info, opts.Tags = info, tags
		}
		pos = publish(t, e, ch, fmt.Sprintf(`{"n":%d}`, i), opts)
	}

	since := func(o uint64) *protocol.StreamPosition {
		return &protocol.StreamPosition{Epoch: pos.Epoch, Offset: o}
	}
	cases := []struct {
		name string
		q    engine.HistoryQuery
		want []uint64
	}{
		{"all", engine.HistoryQuery{Limit: -1}, seq(1, 10)},
		{"limit", engine.HistoryQuery{Limit: 3}, seq(1, 3)},
		{"limit 0 is position only", engine.HistoryQuery{Limit: 0}, nil},
		{"limit above size", engine.HistoryQuery{Limit: 50}, seq(1, 10)},
		{"reverse", engine.HistoryQuery{Limit: -1, Reverse: true}, seq(10, 1)},
		{"reverse limit", engine.HistoryQuery{Limit: 3, Reverse: true}, seq(10, 8)},
		{"since", engine.HistoryQuery{Since: since(4), Limit: -1}, seq(5, 10)},
		{"since limit", engine.HistoryQuery{Since: since(4), Limit: 2}, seq(5, 6)},
		{"since 0", engine.HistoryQuery{Since: since(0), Limit: -1}, seq(1, 10)},
		{"since top", engine.HistoryQuery{Since: since(10), Limit: -1}, nil},
		{"since beyond top", engine.HistoryQuery{Since: since(99), Limit: -1}, nil},
		{"since reverse", engine.HistoryQuery{Since: since(4), Limit: -1, Reverse: true}, seq(3, 1)},
		{"since reverse limit", engine.HistoryQuery{Since: since(4), Limit: 2, Reverse: true}, seq(3, 2)},
		{"since 1 reverse", engine.HistoryQuery{Since: since(1), Limit: -1, Reverse: true}, nil},
		{"since beyond top reverse", engine.HistoryQuery{Since: since(99), Limit: 2, Reverse: true}, seq(10, 9)},
		{"since limit 0", engine.HistoryQuery{Since: since(4), Limit: 0}, nil},
	}
	for _, c := range cases {
		res := history(t, e, ch, c.q)
		if got := offsetsOf(res.Publications); !slices.Equal(got, c.want) {
			t.Errorf("%s: offsets %v, want %v", c.name, got, c.want)
		}
		if res.Position != pos {
			t.Errorf("%s: position %+v, want %+v", c.name, res.Position, pos)
		}
	}

	first := history(t, e, ch, engine.HistoryQuery{Limit: 1}).Publications[0]
	if first.Channel != ch || string(first.Data) != `{"n":1}` || first.Time == 0 ||
		first.Info == nil || first.Info.Client != info.Client || first.Info.User != info.User ||
		string(first.Info.Info) != string(info.Info) || !maps.Equal(first.Tags, tags) {
		t.Fatalf("stored publication came back as %+v (info %+v)", first, first.Info)
	}
}

// testRetentionBySize: only the last HistorySize publications stay, offsets
// unchanged, and the latest publish's size applies.
func (s *suite) testRetentionBySize(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("size")
	for range 10 {
		publish(t, e, ch, `{}`, stored(3))
	}
	expect := func(want []uint64, top uint64) {
		t.Helper()
		res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
		if got := offsetsOf(res.Publications); !slices.Equal(got, want) || res.Position.Offset != top {
			t.Fatalf("history %v at offset %d, want %v at %d", got, res.Position.Offset, want, top)
		}
	}
	expect(seq(8, 10), 10)
	publish(t, e, ch, `{}`, stored(5)) // a larger size keeps what is left
	expect(seq(8, 11), 11)
	publish(t, e, ch, `{}`, stored(1))
	expect(seq(12, 12), 12)
}

// testRetentionByAge: publications older than their HistoryTTL are no longer
// returned, and do not come back when a later publish sets a longer TTL.
func (s *suite) testRetentionByAge(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("age")
	short := engine.PublishOptions{HistorySize: 10, HistoryTTL: time.Second}
	publish(t, e, ch, `{"n":1}`, short)
	publish(t, e, ch, `{"n":2}`, short)
	testkit.WaitFor(t, waitTimeout, "publications to expire", func() bool {
		return len(history(t, e, ch, engine.HistoryQuery{Limit: -1}).Publications) == 0
	})
	publish(t, e, ch, `{"n":3}`, engine.PublishOptions{HistorySize: 10, HistoryTTL: time.Hour})
	res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if got := offsetsOf(res.Publications); !slices.Equal(got, []uint64{3}) || res.Position.Offset != 3 {
		t.Fatalf("after expiry and a new publish: history %v at offset %d, want [3] at 3", got, res.Position.Offset)
	}
}

// testRemoveHistory: removal empties history but keeps the offset rising and
// the epoch unchanged.
func (s *suite) testRemoveHistory(t *testing.T) {
	e, _ := s.start(t)
	ch := channelName("remove")
	var pos protocol.StreamPosition
	for range 5 {
		pos = publish(t, e, ch, `{}`, stored(10))
	}
	if err := e.RemoveHistory(t.Context(), ch); err != nil {
		t.Fatalf("RemoveHistory: %v", err)
	}
	res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	if len(res.Publications) != 0 || res.Position != pos {
		t.Fatalf("after RemoveHistory: %d publications at %+v, want none at %+v", len(res.Publications), res.Position, pos)
	}
	next := publish(t, e, ch, `{}`, stored(10))
	if next != (protocol.StreamPosition{Epoch: pos.Epoch, Offset: 6}) {
		t.Fatalf("publish after RemoveHistory: %+v, want offset 6 in epoch %q", next, pos.Epoch)
	}
	if got := offsetsOf(history(t, e, ch, engine.HistoryQuery{Limit: -1}).Publications); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("history after RemoveHistory and a publish: %v, want [6]", got)
	}
	if err := e.RemoveHistory(t.Context(), channelName("never-used")); err != nil {
		t.Fatalf("RemoveHistory of an unused channel: %v", err)
	}
}
