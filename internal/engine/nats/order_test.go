package nats

import (
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// orderHandler records what an ordering emits.
type orderHandler struct {
	offsets []uint64
	epochs  []string
	resyncs int
}

func (h *orderHandler) HandlePublication(pub *protocol.Publication, epoch string) {
	h.offsets = append(h.offsets, pub.Offset)
	h.epochs = append(h.epochs, epoch)
}
func (h *orderHandler) HandleJoin(string, protocol.ClientInfo)  {}
func (h *orderHandler) HandleLeave(string, protocol.ClientInfo) {}
func (h *orderHandler) HandleControl([]byte)                    {}
func (h *orderHandler) HandleResync(string)                     { h.resyncs++ }

func newOrderTest() (*ordering, *orderHandler, emit) {
	h := &orderHandler{}
	return &ordering{}, h, emit{t: &target{handler: h, resync: h}, channel: "c"}
}

func pubAt(offset uint64) *protocol.Publication {
	return &protocol.Publication{Channel: "c", Offset: offset}
}

func TestOrderingRestoresOffsetOrder(t *testing.T) {
	o, h, out := newOrderTest()
	now := time.Now()
	o.add(pubAt(4), "e", now, out) // before the base is known: held
	o.start(tail{offset: 2, epoch: "e"}, now, out)
	if len(h.offsets) != 0 || o.deadline.IsZero() {
		t.Fatalf("after the base: delivered %v, deadline %v; want nothing delivered and a wait for 3", h.offsets, o.deadline)
	}
	o.add(pubAt(2), "e", now, out) // older than the subscription
	o.add(pubAt(3), "e", now, out)
	o.add(pubAt(4), "e", now, out) // a repeat
	o.add(pubAt(5), "e", now, out)
	if want := []uint64{3, 4, 5}; !slices.Equal(h.offsets, want) || !o.deadline.IsZero() {
		t.Fatalf("delivered %v with deadline %v, want %v and no wait", h.offsets, o.deadline, want)
	}
	if h.resyncs != 0 {
		t.Fatalf("%d resyncs without a loss", h.resyncs)
	}
}

func TestOrderingGivesUpOnLoss(t *testing.T) {
	o, h, out := newOrderTest()
	now := time.Now()
	o.start(tail{}, now, out) // a channel with no message yet
	o.add(pubAt(1), "e", now, out)
	o.add(pubAt(3), "e", now, out)
	o.add(pubAt(5), "e", now, out)
	if d := o.expire(now.Add(reorderWindow/2), out); d.IsZero() || !slices.Equal(h.offsets, []uint64{1}) {
		t.Fatalf("before the deadline: delivered %v, deadline %v; want [1] and still waiting", h.offsets, d)
	}
	if d := o.expire(now.Add(reorderWindow), out); !d.IsZero() {
		t.Fatalf("after the deadline: still waiting until %v", d)
	}
	if want := []uint64{1, 3, 5}; !slices.Equal(h.offsets, want) || h.resyncs != 1 {
		t.Fatalf("delivered %v with %d resyncs, want %v and 1", h.offsets, h.resyncs, want)
	}
	o.add(pubAt(4), "e", now, out) // the straggler is too late
	if len(h.offsets) != 3 {
		t.Fatalf("a straggler below the last delivery was delivered: %v", h.offsets)
	}
}

func TestOrderingNewEpochAndRebase(t *testing.T) {
	o, h, out := newOrderTest()
	now := time.Now()
	o.start(tail{offset: 7, epoch: "old"}, now, out)
	o.add(pubAt(1), "new", now, out) // history lost and begun again
	if !slices.Equal(h.offsets, []uint64{1}) || h.epochs[0] != "new" || h.resyncs != 1 {
		t.Fatalf("new epoch: delivered %v in %v with %d resyncs, want [1] in new and 1", h.offsets, h.epochs, h.resyncs)
	}
	o.rebase = true // a reconnect lost 2..4
	o.add(pubAt(5), "new", now, out)
	o.add(pubAt(6), "new", now, out)
	if want := []uint64{1, 5, 6}; !slices.Equal(h.offsets, want) || !o.deadline.IsZero() {
		t.Fatalf("after a rebase: delivered %v, deadline %v; want %v and no wait", h.offsets, o.deadline, want)
	}
}
