package nats

import "testing"

// TestExpiryMarks: marks merge within an eighth of the TTL, expire in order,
// never fall below an earlier message's expiry, stay bounded, and are
// dropped unused when their generation is stale.
func TestExpiryMarks(t *testing.T) {
	const ttl = 800
	var m expiryMarks
	for i := range uint64(10) { // 10 ms apart: all within ttl/8 = 100 ms
		m.add(1, i+1, int64(i*10)+ttl, ttl)
	}
	if len(m.marks) != 1 || m.marks[0] != (expiryMark{seq: 10, at: 890, first: 800}) {
		t.Fatalf("close publishes not merged into one mark: %+v", m.marks)
	}
	m.add(1, 11, 200+ttl, ttl)
	if len(m.marks) != 2 {
		t.Fatalf("a publish past an eighth of the TTL did not start a mark: %+v", m.marks)
	}
	if got := m.expired(1, 889); got != 0 {
		t.Fatalf("expired before any mark's time: purge below %d", got)
	}
	if got := m.expired(1, 890); got != 11 {
		t.Fatalf("first mark expired: purge below %d, want 11", got)
	}
	if len(m.marks) != 1 || m.marks[0].seq != 11 {
		t.Fatalf("expired mark not removed: %+v", m.marks)
	}

	// The TTL shrinks: the new message's mark keeps the older, later expiry.
	m.add(1, 12, 300+10, 10)
	if last := m.marks[len(m.marks)-1]; last.at != 1000 {
		t.Fatalf("mark after a shorter TTL expires at %d, before its predecessor's 1000", last.at)
	}
	for i := range uint64(100) {
		m.add(1, 13+i, int64(400+100*i), 10)
	}
	if len(m.marks) != maxExpiryMarks || m.marks[maxExpiryMarks-1].seq != 112 {
		t.Fatalf("marks not bounded at %d, newest kept: %d, last %+v", maxExpiryMarks, len(m.marks), m.marks[len(m.marks)-1])
	}

	if got := m.expired(2, 1<<40); got != 0 || len(m.marks) != 0 {
		t.Fatalf("marks of a stale generation used: purge below %d, %d left", got, len(m.marks))
	}
}
