package eventloop

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lesismal/nbio"

	"github.com/heraldrt/herald/internal/testkit"
)

// pinged reports whether a barrier waits for a poller.
func (f *Fence) pinged() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.byPoller {
		b.mu.Lock()
		waiting := b.sent > b.seen
		b.mu.Unlock()
		if waiting {
			return true
		}
	}
	return false
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return server, client
}

// parkingConn adopts a connection whose data callback parks its poller:
// each write to client parks it once, signalling entered, until a receive
// from release (or its close) lets it go on.
func parkingConn(t *testing.T, l *Loop) (c *Conn, client net.Conn, entered, release chan struct{}) {
	t.Helper()
	server, client := tcpPair(t)
	c, err := l.Adopt(server, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	entered, release = make(chan struct{}, 2), make(chan struct{})
	c.nc.OnData(func(*nbio.Conn, []byte) {
		entered <- struct{}{}
		<-release
	})
	return c, client, entered, release
}

// A connection closed from outside the poller while the poller holds its
// hang-up event must not take down the connection that reuses its
// descriptor: without the fence, nbio hands it the stale event and closes it
// with io.EOF before it has exchanged a byte.
func TestFenceKeepsStaleEventsFromNewConnections(t *testing.T) {
	l := NewLoop(LoopConfig{Name: "test"})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())

	// The blocker holds the poller inside its data callback on demand.
	_, blockCli, entered, release := parkingConn(t, l)

	oldSrv, oldCli := tcpPair(t)
	old, err := l.Adopt(oldSrv, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	newSrv, newCli := tcpPair(t)

	// The first byte parks the poller. Then, in this order, the blocker's
	// second byte and the old connection's hang-up become ready, so the
	// poller's next batch handles the blocker first and parks again
	// holding the hang-up.
	if _, err := blockCli.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	<-entered
	if _, err := blockCli.Write([]byte{2}); err != nil {
		t.Fatal(err)
	}
	oldCli.Close()
	release <- struct{}{}
	<-entered

	// Closed from outside the poller, its descriptor is free for the next.
	oldFD := old.nc.Hash()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	closes := make(chan error, 1)
	adopted := make(chan *Conn, 1)
	go func() {
		c, err := l.Adopt(newSrv, func(err error) { closes <- err })
		if err != nil {
			t.Error(err)
		}
		adopted <- c
	}()
	// The poller stays parked until the new connection is registered, or
	// the fence holds it back waiting for the poller.
	testkit.WaitFor(t, 5*time.Second, "the adoption to finish or wait on the fence", func() bool {
		return len(adopted) == 1 || l.fence.pinged()
	})
	release <- struct{}{}
	fresh := <-adopted
	if fresh == nil {
		t.FailNow()
	}
	if fresh.nc.Hash() != oldFD {
		t.Fatalf("the new connection got descriptor %d, not the closed one's %d: the scenario did not happen", fresh.nc.Hash(), oldFD)
	}

	// Once the poller has gone round again, a stale event would have
	// struck; the connection must still carry data.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.fence.barrier(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closes:
		t.Fatalf("the new connection was closed (%v) by the old one's event", err)
	default:
	}
	if err := fresh.Write([]byte("alive\n")); err != nil {
		t.Fatal(err)
	}
	_ = newCli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(newCli).ReadString('\n'); err != nil || line != "alive\n" {
		t.Fatalf("read %q, %v", line, err)
	}
}

// A burst of barriers while a poller is busy must neither fail nor need
// more than one round of the poller: every adoption after a close runs a
// barrier, and each barrier used to write a ping of its own, until the
// beacon's socket buffer was full (a few hundred 1-byte writes) and the
// adoptions failed with EAGAIN. A server whose long polls were all answered
// at their deadline and reopened at once lost a third of them that way.
func TestBarrierBurstWhilePollerBusy(t *testing.T) {
	l := NewLoop(LoopConfig{Name: "test"})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())

	blocker, blockCli, entered, release := parkingConn(t, l)
	var releaseOnce sync.Once
	unpark := func() { releaseOnce.Do(func() { close(release) }) }
	// Registered after Shutdown, so it runs first: a failed test must not
	// leave the poller parked and the shutdown waiting for it.
	defer unpark()
	if _, err := blockCli.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	<-entered

	// Far more barriers than the socket buffer holds pings, all begun
	// while the poller is parked: what each waits for is a ping sent after
	// it began.
	b := l.fence.byPoller[blocker.nc.Hash()%len(l.fence.byPoller)]
	const barriers = 5000
	seqs := make([]uint64, barriers)
	for i := range seqs {
		seq, err := b.ping()
		if err != nil {
			t.Fatalf("ping %d of a burst: %v", i+1, err)
		}
		seqs[i] = seq
	}
	if b.sent > 2 {
		t.Errorf("%d pings written for one burst; want one in flight and one after it", b.sent)
	}
	unpark()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, seq := range seqs {
		if err := b.await(ctx, seq); err != nil {
			t.Fatalf("barrier %d: %v", i+1, err)
		}
	}
}
