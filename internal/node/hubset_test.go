package node

import (
	"fmt"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

type nopSubscriber struct{ name string }

func (*nopSubscriber) deliverPublication(*protocol.Publication, string, []byte) {}
func (*nopSubscriber) deliverFrame(string, []byte)                              {}
func (*nopSubscriber) checkPosition(protocol.StreamPosition)                    {}

// A channel's subscriber list stays exact through adds, duplicate adds and
// removals in any position, below and above the size where it keeps an
// index, and the index always points at each subscriber's slot.
func TestChannelSubscribers(t *testing.T) {
	var cs channelSubscribers
	subs := make([]*nopSubscriber, 3*smallChannel)
	for i := range subs {
		subs[i] = &nopSubscriber{name: fmt.Sprint(i)}
	}
	present := map[subscriber]bool{}
	check := func(step string) {
		t.Helper()
		if len(cs.list) != len(present) {
			t.Fatalf("%s: %d in the list, want %d", step, len(cs.list), len(present))
		}
		for i, s := range cs.list {
			if !present[s] {
				t.Fatalf("%s: %v listed but not added", step, s)
			}
			if cs.find(s) != i {
				t.Fatalf("%s: find(%v) = %d, listed at %d", step, s, cs.find(s), i)
			}
		}
		if cs.index != nil && len(cs.index) != len(cs.list) {
			t.Fatalf("%s: index of %d for a list of %d", step, len(cs.index), len(cs.list))
		}
	}
	for i, s := range subs {
		cs.add(s)
		cs.add(s)
		present[s] = true
		check(fmt.Sprintf("add %d", i))
		if i == smallChannel/2 {
			if !cs.remove(subs[0]) || cs.remove(subs[0]) {
				t.Fatal("remove of the first subscriber not reported once")
			}
			delete(present, subs[0])
			check("remove from a small channel")
		}
	}
	if cs.index == nil {
		t.Fatal("no index above smallChannel subscribers")
	}
	for i := len(subs) - 1; i > 0; i -= 3 {
		if !cs.remove(subs[i]) {
			t.Fatalf("remove %d reported absent", i)
		}
		delete(present, subs[i])
		check(fmt.Sprintf("remove %d", i))
	}
	if cs.remove(&nopSubscriber{}) {
		t.Fatal("removing a stranger reported present")
	}
}
