package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

// TestDeliveryQueue checks order, the bound on waiting pushes, that
// non-waiting pushes may pass it, and that stopping releases a waiting
// pusher.
func TestDeliveryQueue(t *testing.T) {
	var q DeliveryQueue[int]
	q.Init(2)
	q.Push(1, true)
	q.Push(2, true)
	q.Push(3, false) // past the limit, without waiting
	if n := q.Len(); n != 3 {
		t.Fatalf("Len %d, want 3", n)
	}
	pushed := make(chan struct{})
	go func() {
		q.Push(4, true) // waits for room
		close(pushed)
	}()
	select {
	case <-pushed:
		t.Fatal("a push into a full queue did not wait")
	case <-time.After(50 * time.Millisecond):
	}

	stop := make(chan struct{})
	var mu sync.Mutex
	var got []int
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		q.Run(stop, func(v *int) {
			mu.Lock()
			got = append(got, *v)
			mu.Unlock()
		})
	}()
	<-pushed
	testkit.WaitFor(t, 5*time.Second, "four events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 4
	})
	mu.Lock()
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("handled %v, want 1..4 in order", got)
		}
	}
	mu.Unlock()

	close(stop)
	<-ran
	// A stopped queue neither waits nor keeps anything.
	q.Push(5, true)
	q.Push(6, true)
	q.Push(7, true)
	if n := q.Len(); n != 0 {
		t.Fatalf("a stopped queue holds %d events", n)
	}
}

// TestDeliveryQueueStopReleasesPushers: a pusher waiting on a full queue
// returns when the queue stops.
func TestDeliveryQueueStopReleasesPushers(t *testing.T) {
	var q DeliveryQueue[int]
	q.Init(1)
	q.Push(1, true)
	stop := make(chan struct{})
	blocked := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		q.Run(stop, func(*int) {
			close(blocked)
			<-stop
		})
	}()
	<-blocked
	q.Push(2, true) // room again: Run took the batch
	released := make(chan struct{})
	go func() {
		q.Push(3, true)
		close(released)
	}()
	close(stop)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting pusher was not released by the stop")
	}
	<-ran
}
