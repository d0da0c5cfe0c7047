package node

import (
	"testing"
	"unsafe"
)

// Every connection holds a Session, so its size is part of the memory per
// idle connection (docs/benchmarks.md). The allocator rounds 385 bytes up
// to 416: a field that takes the struct past 384 costs 32 bytes a
// connection, not its own size. Make room before adding one.
func TestSessionFitsItsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(Session{}); size > 384 {
		t.Fatalf("Session is %d bytes, over the 384-byte size class", size)
	}
}
