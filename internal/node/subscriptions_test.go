package node

import (
	"fmt"
	"slices"
	"testing"
)

// The set behaves as a map on both sides of its change of representation.
func TestSubscriptionSet(t *testing.T) {
	var ss subscriptionSet
	want := map[string]*subscription{}
	check := func(step string) {
		t.Helper()
		if ss.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, ss.len(), len(want))
		}
		var got []string
		for sub := range ss.all() {
			got = append(got, sub.channel)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: all yielded %d subscriptions, want %d", step, len(got), len(want))
		}
		for ch, sub := range want {
			if ss.get(ch) != sub {
				t.Fatalf("%s: get(%q) is not the subscription put", step, ch)
			}
			if !slices.Contains(got, ch) {
				t.Fatalf("%s: all did not yield %q", step, ch)
			}
		}
		if ss.get("absent") != nil {
			t.Fatalf("%s: get of an absent channel found one", step)
		}
	}
	check("empty")
	for i := range 3 * smallSubscriptionSet {
		sub := &subscription{channel: fmt.Sprintf("c:%d", i)}
		ss.put(sub)
		want[sub.channel] = sub
		check(fmt.Sprintf("after put %d", i))
		if i == 3 {
			ss.remove("c:1")
			delete(want, "c:1")
			check("after removing from the slice")
		}
	}
	if ss.large == nil {
		t.Fatal("the set never moved to a map")
	}
	ss.remove("c:40")
	delete(want, "c:40")
	ss.remove("absent")
	check("after removing from the map")

	n := 0
	for range ss.all() {
		n++
		break
	}
	if n != 1 {
		t.Fatal("all went on after its consumer stopped")
	}
}

func TestSubscriptionSetRemoveLast(t *testing.T) {
	var ss subscriptionSet
	a, b := &subscription{channel: "a"}, &subscription{channel: "b"}
	ss.put(a)
	ss.put(b)
	ss.remove("b")
	ss.remove("a")
	if ss.len() != 0 || ss.get("a") != nil || ss.get("b") != nil {
		t.Fatal("set not empty after removing everything")
	}
	ss.put(b)
	if ss.get("b") != b || ss.len() != 1 {
		t.Fatal("set unusable after emptying")
	}
}
