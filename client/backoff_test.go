package client

import (
	"math"
	"testing"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	// With the largest random draw, delays double up to the cap.
	b.randN = func(n int64) int64 { return n - 1 }
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		if got := b.next(); got != w*time.Millisecond {
			t.Fatalf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	// With the smallest, the client may retry at once: full jitter.
	b.randN = func(int64) int64 { return 0 }
	if got := b.next(); got != 0 {
		t.Fatalf("smallest draw: %v", got)
	}
	b.reset()
	b.randN = func(n int64) int64 { return n - 1 }
	if got := b.next(); got != 100*time.Millisecond {
		t.Fatalf("after reset: %v", got)
	}
}

func TestBackoffStaysInRange(t *testing.T) {
	b := newBackoff(10*time.Millisecond, time.Second)
	for i := range 1000 {
		c := b.ceiling()
		d := b.next()
		if d < 0 || d > c || c > time.Second {
			t.Fatalf("attempt %d: delay %v outside [0, %v]", i, d, c)
		}
	}
	// Huge attempt counts and caps neither overflow nor go negative.
	b = newBackoff(time.Nanosecond, math.MaxInt64)
	b.attempt = 500
	if c := b.ceiling(); c <= 0 {
		t.Fatalf("ceiling %v", c)
	}
}
