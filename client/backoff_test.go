package client

import (
	"context"
	"errors"
	"math"
	"net"
	"sync/atomic"
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

// TestReconnectWaitsForBackoff connects to a server that drops every
// connection at once, with the backoff's random draw scripted to its
// largest value and the wait between attempts under the test's control:
// after each failed attempt the reconnect loop must wait for exactly the
// delay the backoff returns, doubling up to MaxBackoff, and make no new
// attempt until that wait is over.
func TestReconnectWaitsForBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Counted before the close the client sees as the failure.
			attempts.Add(1)
			_ = conn.Close()
		}
	}()
	defer func() {
		_ = ln.Close()
		<-accepted
	}()

	c, err := New(Config{URL: "http://" + ln.Addr().String(), MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.jitter = func(n int64) int64 { return n - 1 }
	type pauseCall struct {
		d       time.Duration
		release chan struct{}
	}
	pauses := make(chan pauseCall)
	c.pause = func(ctx context.Context, d time.Duration) bool {
		p := pauseCall{d, make(chan struct{})}
		select {
		case pauses <- p:
		case <-ctx.Done():
			return false
		}
		select {
		case <-p.release:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// Connect starts the loop, then gives up waiting at once; the loop
	// goes on in the background until Close.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Connect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect: %v", err)
	}

	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		var p pauseCall
		select {
		case p = <-pauses:
		case <-time.After(10 * time.Second):
			t.Fatalf("no reconnect wait after attempt %d", i+1)
		}
		if p.d != w*time.Millisecond {
			t.Fatalf("wait %d is %v, want the backoff's %v", i+1, p.d, w*time.Millisecond)
		}
		if n := attempts.Load(); n != int32(i+1) {
			t.Fatalf("%d attempts while the loop waits after attempt %d", n, i+1)
		}
		close(p.release)
	}
}
