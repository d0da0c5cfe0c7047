package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueueBoundsDataEventsOnly(t *testing.T) {
	q := newQueue(2)
	data := event{data: true, fn: func() {}}
	for i := range 2 {
		if !q.tryPush(data) {
			t.Fatalf("data event %d refused in a queue of two", i+1)
		}
	}
	if q.tryPush(data) {
		t.Fatal("a third data event fit in a queue of two")
	}
	// State changes always fit: there are few, and losing one would lie
	// about the client's state.
	if !q.tryPush(event{fn: func() {}}) {
		t.Fatal("control event refused")
	}
}

func TestQueueRunsInOrderAndStops(t *testing.T) {
	q := newQueue(100)
	var got []int
	for i := range 10 {
		q.tryPush(event{data: true, fn: func() { got = append(got, i) }})
	}
	stop := make(chan struct{})
	q.tryPush(event{fn: func() { close(stop) }})
	go q.dispatch()
	<-stop
	q.close()
	<-q.done
	for i, v := range got {
		if v != i {
			t.Fatalf("order %v", got)
		}
	}
	if len(got) != 10 {
		t.Fatalf("ran %d of 10", len(got))
	}
	if !q.tryPush(event{data: true, fn: func() { t.Error("ran after close") }}) {
		t.Fatal("a closed queue must accept (and drop) events")
	}
}

func TestQueueWaitBelow(t *testing.T) {
	q := newQueue(4)
	gate := make(chan struct{})
	var ran atomic.Int32
	for range 4 {
		q.tryPush(event{data: true, fn: func() { <-gate; ran.Add(1) }})
	}
	go q.dispatch()
	defer func() { q.close(); <-q.done }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.waitBelow(ctx, 1); err == nil {
		t.Fatal("waitBelow returned while the queue was full")
	}
	close(gate)
	if err := q.waitBelow(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// push waits for room rather than failing.
	for range 10 {
		if err := q.push(context.Background(), event{data: true, fn: func() { ran.Add(1) }}); err != nil {
			t.Fatal(err)
		}
	}
}

// An event of a subscription that was unsubscribed after it was queued is
// dropped.
func TestQueueDropsStaleGenerations(t *testing.T) {
	q := newQueue(10)
	s := &Subscription{}
	s.gen.Store(1)
	q.tryPush(event{sub: s, gen: 1, fn: func() { t.Error("stale event ran") }})
	s.gen.Store(2)
	done := make(chan struct{})
	q.tryPush(event{sub: s, gen: 2, fn: func() { close(done) }})
	go q.dispatch()
	<-done
	q.close()
	<-q.done
}
