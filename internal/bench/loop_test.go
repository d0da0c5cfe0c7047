package bench

import (
	"context"
	"net"
	"testing"
	"time"
)

// Connections leave from 127.0.0.1, 127.0.0.2, ... in turn.
func TestSourceDialerSpreadsSourceAddresses(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := newSourceDialer(ln.Addr().String(), 3, 5*time.Second)
	for i := range 6 {
		c, err := d.dial(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := s.RemoteAddr().(*net.TCPAddr).IP.String()
		want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}[i%3]
		if got != want {
			t.Errorf("connection %d from %s, want %s", i, got, want)
		}
		c.Close()
		s.Close()
	}
	if ip := newSourceDialer("x", 300, 0).source(299).String(); ip != "127.0.1.44" {
		t.Errorf("source 299 of 300 is %s", ip)
	}
}
