package testkit

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Balancer is a round-robin TCP load balancer on loopback, standing in for
// the one in front of a real cluster: no sticky sessions, and a connection
// to a backend that dies is simply cut, so clients must reconnect and land
// on another node by themselves.
type Balancer struct {
	// Addr is the host:port clients connect to.
	Addr string
	ln   net.Listener

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// StartBalancer listens on a free loopback port and spreads connections
// over backends (host:port). It stops, cutting every connection, when the
// test ends.
func StartBalancer(t testing.TB, backends ...string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{Addr: ln.Addr().String(), ln: ln, backends: backends, conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

// URL is the balancer's base URL followed by path.
func (b *Balancer) URL(path string) string { return "http://" + b.Addr + path }

// SetBackends replaces the backends new connections go to; established
// connections stay where they are.
func (b *Balancer) SetBackends(backends ...string) {
	b.mu.Lock()
	b.backends = append([]string(nil), backends...)
	b.mu.Unlock()
}

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			c.Close()
			return
		}
		b.wg.Add(1)
		go b.serve(c)
	}
}

func (b *Balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *Balancer) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
}

// dial connects to the next backend in turn that accepts, as a balancer
// with health checks would skip a dead node.
func (b *Balancer) dial() net.Conn {
	b.mu.Lock()
	backends := b.backends
	start := b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		addr := backends[(start+i)%len(backends)]
		if up, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			return up
		}
	}
	return nil
}

func (b *Balancer) serve(down net.Conn) {
	defer b.wg.Done()
	defer b.untrack(down)
	up := b.dial()
	if up == nil {
		return
	}
	if !b.track(up) {
		up.Close()
		return
	}
	defer b.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// One direction ending ends the pair: a half-open connection to a
		// dead node would otherwise hang the client.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, down)
	go pipe(down, up)
	<-done
	<-done
}

func (b *Balancer) close() {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.ln.Close()
	b.wg.Wait()
}
