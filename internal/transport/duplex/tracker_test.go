package duplex

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTrackerWaitsForTheLastMember(t *testing.T) {
	var tr Tracker[int]
	if !tr.Add(1) || !tr.Add(2) {
		t.Fatal("Add refused before Stop")
	}
	if got := tr.Stop(); len(got) != 2 {
		t.Fatalf("Stop returned %v", got)
	}
	if tr.Add(3) || !tr.Stopped() {
		t.Fatal("Add admitted a member after Stop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with members left: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background()) }()
	tr.Remove(1)
	tr.Remove(2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the set was empty")
	}
}
