package eventloop

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/testkit"
)

// nbio's packages start goroutines at init; only what tests leave counts.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }

// A Shutdown right after Start must not hang: nbio pollers that had not yet
// entered their loop used to swallow the stop.
func TestStartThenShutdownAtOnce(t *testing.T) {
	for range 50 {
		l := NewLoop(LoopConfig{Name: "test"})
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("shutdown right after start: %v", err)
		}
	}
}

// An adopted connection takes writes without blocking and reports its
// peer's close once.
func TestAdoptWriteAndPeerClose(t *testing.T) {
	l := NewLoop(LoopConfig{Name: "test"})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	closes := make(chan error, 2)
	c, err := l.Adopt(server, func(err error) { closes <- err })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	client.Close()
	testkit.WaitFor(t, 5*time.Second, "the close callback", func() bool { return len(closes) == 1 })
	if err := c.Write([]byte("late")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if len(closes) != 1 {
		t.Fatalf("%d close callbacks", len(closes))
	}
}

// Once Shutdown has begun, Adopt refuses connections instead of handing
// them to pollers that are stopping; the caller keeps the connection.
func TestAdoptAfterShutdownFails(t *testing.T) {
	l := NewLoop(LoopConfig{Name: "test"})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	server, client := tcpPair(t)
	defer server.Close()
	if _, err := l.Adopt(server, func(error) {}); !errors.Is(err, ErrFenceClosed) {
		t.Fatalf("adopt after shutdown: %v, want ErrFenceClosed", err)
	}
	// The connection is still the caller's, open and usable.
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); err != nil {
		t.Fatal(err)
	}
}
