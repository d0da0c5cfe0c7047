package turn

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// TestUserBitrate sends far more than a user's budget in a burst: the peer
// receives about one second's worth (the bucket) and the rest is dropped.
func TestUserBitrate(t *testing.T) {
	const rate, size, sent = 20_000, 1000, 200
	s := start(t, Config{AllowedPeers: loopback, UserBitrate: rate})
	c, relay := allocate(t, s, "alice")
	p := peer(t)
	if err := c.CreatePermission(p.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	payload := bytes.Repeat([]byte{'x'}, size)
	for range sent {
		if _, err := relay.WriteTo(payload, p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Read until the relay has been quiet for a while: everything it
	// forwarded has arrived by then.
	received := 0
	buf := make([]byte, 2048)
	for {
		_ = p.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := p.ReadFrom(buf); err != nil {
			break
		}
		received++
	}
	elapsed := time.Since(began)
	allowed := (rate + int(elapsed.Seconds()*rate)) / size
	if received == 0 || received > allowed+2 {
		t.Fatalf("the peer received %d of %d packets in %v; the budget allows about %d", received, sent, elapsed, allowed)
	}
}

// The rate tests offer traffic for a bounded window and count the bytes
// that get through. A user's bucket holds one second of budget, so over a
// window of w seconds at most budget·(1+w) bytes may pass; the bounds allow
// for a loaded machine, where senders fall behind and scheduling is coarse,
// but stay far from what a second budget would let through.
const (
	budget     = 40_000 // bytes per second
	packetSize = 1000
	window     = 2 * time.Second
)

// flow sends packetSize datagrams with send at rate bytes per second for
// window, and reports how many bytes it sent and for how long.
func flow(t *testing.T, rate int, send func([]byte) error) (sent int, took time.Duration) {
	t.Helper()
	payload := bytes.Repeat([]byte{'x'}, packetSize)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	for {
		elapsed := time.Since(began)
		if elapsed >= window {
			return sent, elapsed
		}
		for sent < int(elapsed.Seconds()*float64(rate))+packetSize {
			if err := send(payload); err != nil {
				t.Errorf("send: %v", err)
				return sent, time.Since(began)
			}
			sent += packetSize
		}
		<-tick.C
	}
}

// counter counts the bytes one socket receives until stopped.
type counter struct {
	done  chan struct{}
	bytes int
}

// countBytes reads from c until stop is closed and c has then been quiet
// for a moment: whatever was in flight when the senders stopped has
// arrived by then.
func countBytes(c net.PacketConn, stop <-chan struct{}) *counter {
	k := &counter{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		buf := make([]byte, 2048)
		for {
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			var timeout net.Error
			switch {
			case err == nil:
				k.bytes += n
			case errors.As(err, &timeout) && timeout.Timeout():
				select {
				case <-stop:
					return
				default:
				}
			default:
				return
			}
		}
	}()
	return k
}

func (k *counter) total() int {
	<-k.done
	return k.bytes
}

// capped checks that got bytes, relayed over took, are what one budget
// allows: no more than its bucket and refill (with slack for timing), and
// not starved either.
func capped(t *testing.T, what string, got int, took time.Duration) {
	t.Helper()
	most := int(1.15*budget*(1+took.Seconds())) + 2*packetSize
	least := int(0.5 * budget * took.Seconds())
	t.Logf("%s: %d bytes in %v (one budget allows %d)", what, got, took.Round(time.Millisecond), int(budget*(1+took.Seconds())))
	if got > most || got < least {
		t.Errorf("%s: %d bytes got through in %v, want between %d and %d: one budget of %d B/s", what, got, took, least, most, budget)
	}
}

// TestUserBitrateShared: a user's allocations share one budget, and what
// peers send to the user counts too.
func TestUserBitrateShared(t *testing.T) {
	t.Run("two allocations", func(t *testing.T) {
		s := start(t, Config{AllowedPeers: loopback, UserBitrate: budget})
		c1, relay1 := allocate(t, s, "alice")
		c2, relay2 := allocate(t, s, "alice")
		p1, p2 := peer(t), peer(t)
		if err := c1.CreatePermission(p1.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if err := c2.CreatePermission(p2.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		in1, in2 := countBytes(p1, stop), countBytes(p2, stop)
		var wg sync.WaitGroup
		var took [2]time.Duration
		for i, r := range []net.PacketConn{relay1, relay2} {
			to := []net.Addr{p1.LocalAddr(), p2.LocalAddr()}[i]
			wg.Go(func() {
				_, took[i] = flow(t, 4*budget, func(b []byte) error { _, err := r.WriteTo(b, to); return err })
			})
		}
		wg.Wait()
		close(stop)
		capped(t, "alice's two allocations together", in1.total()+in2.total(), max(took[0], took[1]))
	})
	t.Run("peer to user", func(t *testing.T) {
		s := start(t, Config{AllowedPeers: loopback, UserBitrate: budget})
		c, relay := allocate(t, s, "alice")
		p := peer(t)
		if err := c.CreatePermission(p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		in := countBytes(relay, stop)
		_, took := flow(t, 4*budget, func(b []byte) error { _, err := p.WriteTo(b, relay.LocalAddr()); return err })
		close(stop)
		capped(t, "a peer's datagrams to alice", in.total(), took)
	})
}

// TestUserBitrateIsPerUser: while alice sends far beyond her budget, bob's
// relay carries all he sends within his.
func TestUserBitrateIsPerUser(t *testing.T) {
	s := start(t, Config{AllowedPeers: loopback, UserBitrate: budget})
	alice, aliceRelay := allocate(t, s, "alice")
	bob, bobRelay := allocate(t, s, "bob")
	pa, pb := peer(t), peer(t)
	if err := alice.CreatePermission(pa.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := bob.CreatePermission(pb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	toAlice, toBob := countBytes(pa, stop), countBytes(pb, stop)
	var wg sync.WaitGroup
	var aliceTook time.Duration
	var bobSent int
	wg.Go(func() {
		_, aliceTook = flow(t, 4*budget, func(b []byte) error { _, err := aliceRelay.WriteTo(b, pa.LocalAddr()); return err })
	})
	wg.Go(func() {
		bobSent, _ = flow(t, 3*budget/4, func(b []byte) error { _, err := bobRelay.WriteTo(b, pb.LocalAddr()); return err })
	})
	wg.Wait()
	close(stop)
	capped(t, "alice", toAlice.total(), aliceTook)
	got := toBob.total()
	t.Logf("bob: %d of %d bytes", got, bobSent)
	if got < bobSent*9/10 {
		t.Errorf("bob's relay carried %d of the %d bytes he sent within his budget", got, bobSent)
	}
}

// TestUserBitrateTCP: the connections of a TCP allocation (RFC 6062) count
// against their user's budget too, both ways. A stream cannot lose bytes as
// datagrams do, so the relay paces it instead: what reaches the other end
// within the window is what the budget allows, and the rest waits in the
// sender's socket buffers.
func TestUserBitrateTCP(t *testing.T) {
	for _, toPeer := range []bool{true, false} {
		t.Run(map[bool]string{true: "user to peer", false: "peer to user"}[toPeer], func(t *testing.T) {
			user, peer := tcpRelay(t)
			from, to := user, peer
			if !toPeer {
				from, to = peer, user
			}
			began := time.Now()
			got := make(chan int, 1)
			go func() {
				n, buf := 0, make([]byte, 32<<10)
				_ = to.SetReadDeadline(began.Add(window))
				for {
					k, err := to.Read(buf)
					n += k
					if err != nil {
						got <- n
						return
					}
				}
			}()
			// Paced writes block once the reader stops at the window's end.
			_ = from.SetWriteDeadline(time.Now().Add(window + 5*time.Second))
			_, took := flow(t, 4*budget, func(b []byte) error { _, err := from.Write(b); return err })
			capped(t, "a TCP relay", <-got, min(took, window))
		})
	}
}

// tcpRelay makes a TCP allocation for alice and connects it to a peer,
// returning both ends.
func tcpRelay(t *testing.T) (user, peer net.Conn) {
	t.Helper()
	s := start(t, Config{AllowedPeers: loopback, UserBitrate: budget})
	cred := credentials(t, s, "alice")
	c := dial(t, s, cred.Username, cred.Credential, "tcp", nil)
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	user, err = alloc.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = user.Close() })
	peer, ok := <-accepted
	if !ok {
		t.Fatal("the relay's connection to the peer was not accepted")
	}
	t.Cleanup(func() { _ = peer.Close() })
	return user, peer
}
