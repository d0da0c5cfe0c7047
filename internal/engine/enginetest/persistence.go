package enginetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// historyState is what a persistent engine must keep across a reopen.
type historyState struct {
	pos     protocol.StreamPosition
	offsets []uint64
}

func readState(t *testing.T, e engine.Engine, ch string) historyState {
	t.Helper()
	res := history(t, e, ch, engine.HistoryQuery{Limit: -1})
	return historyState{pos: res.Position, offsets: offsetsOf(res.Publications)}
}

func closeEngine(t *testing.T, e engine.Engine) {
	t.Helper()
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// testReopen: closing and reopening on the same data keeps history,
// retention, offsets, epochs (even of a channel only read), removals and
// idempotency keys.
func (s *suite) testReopen(t *testing.T) {
	dir := t.TempDir()
	e, _ := startEngine(t, s.reopen(t, dir))
	trimmed, plain, removed, unused := channelName("trimmed"), channelName("plain"), channelName("removed"), channelName("unused")
	for range 5 {
		publish(t, e, trimmed, `{}`, stored(3))
	}
	publish(t, e, plain, `{"n":1}`, stored(10))
	keyedPos := publish(t, e, plain, `{"n":2}`, keyed("k", time.Hour))
	for range 2 {
		publish(t, e, removed, `{}`, stored(10))
	}
	if err := e.RemoveHistory(t.Context(), removed); err != nil {
		t.Fatalf("RemoveHistory: %v", err)
	}
	before := map[string]historyState{}
	for _, ch := range []string{trimmed, plain, removed, unused} {
		before[ch] = readState(t, e, ch)
	}
	closeEngine(t, e)

	e, _ = startEngine(t, s.reopen(t, dir))
	for ch, want := range before {
		if got := readState(t, e, ch); got.pos != want.pos || !slices.Equal(got.offsets, want.offsets) {
			t.Errorf("%s after reopen: history %v at %+v, was %v at %+v", ch, got.offsets, got.pos, want.offsets, want.pos)
		}
	}
	if got := history(t, e, plain, engine.HistoryQuery{Limit: 1}).Publications; len(got) != 1 || string(got[0].Data) != `{"n":1}` {
		t.Fatalf("stored data after reopen: %+v", got)
	}
	if pos := publish(t, e, plain, `{"n":"retry"}`, keyed("k", time.Hour)); pos != keyedPos {
		t.Errorf("repeated idempotency key after reopen: %+v, want the first result %+v", pos, keyedPos)
	}
	for _, ch := range []string{trimmed, plain, removed, unused} {
		want := before[ch].pos
		if pos := publish(t, e, ch, `{}`, stored(3)); pos != (protocol.StreamPosition{Epoch: want.Epoch, Offset: want.Offset + 1}) {
			t.Errorf("%s: first publish after reopen at %+v, want offset %d in epoch %q", ch, pos, want.Offset+1, want.Epoch)
		}
	}
	if got := offsetsOf(history(t, e, trimmed, engine.HistoryQuery{Limit: -1}).Publications); !slices.Equal(got, seq(4, 6)) {
		t.Errorf("retention after reopen: history %v, want [4 5 6]", got)
	}
}

// testFreshDataNewEpoch: a channel in a new, empty data set gets a new epoch,
// so positions from the lost history cannot be resumed.
func (s *suite) testFreshDataNewEpoch(t *testing.T) {
	ch := channelName("wiped")
	e, _ := startEngine(t, s.reopen(t, t.TempDir()))
	old := publish(t, e, ch, `{}`, stored(10))
	closeEngine(t, e)

	e, _ = startEngine(t, s.reopen(t, t.TempDir()))
	pos := history(t, e, ch, engine.HistoryQuery{}).Position
	if pos.Offset != 0 || pos.Epoch == old.Epoch || !protocol.ValidEpoch(pos.Epoch) {
		t.Fatalf("fresh data: position %+v, want offset 0 in a new valid epoch (old was %q)", pos, old.Epoch)
	}
}
