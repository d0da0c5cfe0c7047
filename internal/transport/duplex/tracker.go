package duplex

import (
	"context"
	"sync"
)

// Tracker is the set of a transport's live members (connections, peer
// connections) that shutdown stops admitting, then waits to see gone. The
// zero value is an empty, admitting set.
type Tracker[T comparable] struct {
	mu      sync.Mutex
	stopped bool
	members map[T]struct{}
	emptied chan struct{} // closed and cleared when members becomes empty
}

// Add admits m, unless Stop has been called.
func (t *Tracker[T]) Add(m T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if t.members == nil {
		t.members = make(map[T]struct{})
	}
	t.members[m] = struct{}{}
	return true
}

// Remove forgets m, waking Wait when it was the last.
func (t *Tracker[T]) Remove(m T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.members, m)
	if len(t.members) == 0 && t.emptied != nil {
		close(t.emptied)
		t.emptied = nil
	}
}

// Stop refuses further members and returns the present ones.
func (t *Tracker[T]) Stop() []T {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	return t.Members()
}

// Stopped reports whether Stop has been called.
func (t *Tracker[T]) Stopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// Members returns the present members.
func (t *Tracker[T]) Members() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]T, 0, len(t.members))
	for m := range t.members {
		out = append(out, m)
	}
	return out
}

// Wait returns once the set is empty, or with ctx's error.
func (t *Tracker[T]) Wait(ctx context.Context) error {
	t.mu.Lock()
	if len(t.members) == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.emptied == nil {
		t.emptied = make(chan struct{})
	}
	ch := t.emptied
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
