package testkit

import (
	"net"
	"os"
	"testing"
)

// TestStartNATS checks the server helper itself: ready when returned, back
// on the same address after Restart, gone after Kill.
func TestStartNATS(t *testing.T) {
	if os.Getenv(NATSEnv) != "" {
		t.Skipf("%s names an external server", NATSEnv)
	}
	s := StartNATS(t)
	if !s.ready() {
		t.Fatalf("server at %s not ready after StartNATS:\n%s", s.URL, s.Log())
	}
	addr := s.addr
	s.Restart(t)
	if s.addr != addr || !s.ready() {
		t.Fatalf("after Restart: address %s (was %s), ready %v", s.addr, addr, s.ready())
	}
	s.Kill(t)
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("server still accepts connections after Kill")
	}
}
