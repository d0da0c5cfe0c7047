package eventloop

import "testing"

// A writer holds back above the high-water mark and is told once, when the
// backlog falls to the low one; bytes never added do not push the count
// below zero.
func TestBacklog(t *testing.T) {
	var b Backlog
	b.Add(100)
	if b.Blocked(100, 10) {
		t.Fatal("blocked at the high-water mark")
	}
	b.Add(1)
	if !b.Blocked(100, 10) {
		t.Fatal("not blocked above the high-water mark")
	}
	if b.Sent(50) {
		t.Fatal("resume reported above the low-water mark")
	}
	if !b.Sent(41) {
		t.Fatal("no resume at the low-water mark")
	}
	if b.Sent(5) {
		t.Fatal("resume reported twice")
	}
	b.Sent(1000)
	b.Add(5)
	if !b.Blocked(4, 0) || !b.Sent(5) {
		t.Fatal("count drifted after bytes that were never added")
	}
}
