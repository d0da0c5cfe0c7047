package api

import (
	"fmt"
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1_700_000_000, 0)
	for i := range loginBurst {
		if _, ok := l.allow("a", now); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	wait, ok := l.allow("a", now)
	if ok || wait != loginEvery {
		t.Fatalf("attempt past the burst: %v, %v; want refused for %v", wait, ok, loginEvery)
	}
	if _, ok := l.allow("b", now); !ok {
		t.Fatal("another address was refused")
	}
	// A refused attempt costs nothing: one more is allowed after loginEvery.
	if _, ok := l.allow("a", now.Add(loginEvery)); !ok {
		t.Fatal("refused after the bucket refilled one attempt")
	}
	if _, ok := l.allow("a", now.Add(loginEvery)); ok {
		t.Fatal("two attempts allowed after one refilled")
	}
}

func TestLoginLimiterIsBounded(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 * maxLoginAddrs {
		l.allow(fmt.Sprint("addr", i), now)
	}
	if len(l.addrs) > maxLoginAddrs {
		t.Fatalf("%d addresses remembered, at most %d", len(l.addrs), maxLoginAddrs)
	}
}
