package eventloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/lesismal/nbio"
)

// Fence keeps an nbio engine from applying to a new connection an event that
// was meant for a closed one.
//
// nbio pollers look connections up by file descriptor number. A poller
// fetches up to 1,024 ready events at once and then handles them one by one;
// if, meanwhile, a connection is closed from another goroutine (a write that
// fails with EPIPE, a close timer) and a new connection is given the same
// descriptor number, the poller hands the old connection's hang-up event to
// the new one and closes it with io.EOF before it has exchanged a byte. Under
// connection churn on a busy machine this drops a fresh connection now and
// then.
//
// The fence counts closes made outside the pollers (Outside) and lets a new
// connection register (Admit) only once every poller has finished the batch
// it was handling when the last counted close happened: a beacon, one end of
// a socket pair adopted by each poller, is pinged and its echo awaited. No
// close is counted while a connection registers, because Admit excludes
// Outside.
//
// A close from inside a poller, while it handles the closed connection's own
// event, needs no fence: that batch holds no other event for the number.
// Callbacks that run on a poller must therefore never call Outside.
//
// Start also proves that the pollers loop: an nbio poller clears its stop
// flag when its loop starts, so an Engine.Stop issued before every loop has
// started is lost and Stop never returns.
type Fence struct {
	// gate is held shared by Outside and exclusively by Admit while the new
	// connection registers.
	gate sync.RWMutex
	// closes counts closes outside the pollers; covered is the largest count
	// a completed barrier has covered.
	closes  atomic.Uint64
	covered atomic.Uint64

	mu       sync.Mutex
	beacons  map[*nbio.Conn]*beacon
	byPoller []*beacon
}

// beacon is one poller's socket pair: writes to peer wake the poller, which
// counts them in Data.
//
// At most one ping is in flight. Every barrier needs a ping written after it
// began, and one in flight may be older, so a barrier that finds one waits
// for the next, which the poller's echo of the current one writes. Barriers
// arriving together thus share pings, and the socket's buffer never fills:
// each 1-byte write takes a whole buffer of the kernel's (about 270 fit in
// the default send buffer), and a burst of adoptions, such as every long
// poll of a server answered at its deadline and reopened at once, used to
// ping faster than a busy poller reads.
type beacon struct {
	peer int // our end, non-blocking

	mu   sync.Mutex
	sent uint64
	seen uint64
	// next: a barrier waits for the ping after the one in flight.
	next bool
	dead bool
	// wake is closed and replaced whenever seen or dead changes.
	wake chan struct{}
}

// ErrFenceClosed is returned by Admit once the engine's pollers are gone.
var ErrFenceClosed = errors.New("eventloop: engine stopped")

// NewFence returns a fence to Start once its engine has started.
func NewFence() *Fence {
	return &Fence{beacons: make(map[*nbio.Conn]*beacon)}
}

// Start adopts a beacon into each of the engine's pollers and returns once
// every poller has echoed one. The engine's close callback must pass its
// connections through Closed, and an engine whose data callback is
// engine-wide must call each connection's own DataHandler.
func (f *Fence) Start(ctx context.Context, e *nbio.Engine, pollers int) error {
	f.mu.Lock()
	f.byPoller = make([]*beacon, pollers)
	covered := 0
	// Pollers are picked by file descriptor; a few extra pairs cover them all.
	for tries := 0; covered < pollers; tries++ {
		if tries == 16*pollers {
			f.mu.Unlock()
			return fmt.Errorf("eventloop: beacons reached %d of %d pollers", covered, pollers)
		}
		b, nc, err := f.adoptBeacon(e)
		if err != nil {
			f.mu.Unlock()
			return err
		}
		f.beacons[nc] = b
		if idx := nc.Hash() % pollers; f.byPoller[idx] == nil {
			f.byPoller[idx] = b
			covered++
		}
	}
	f.mu.Unlock()
	return f.barrier(ctx)
}

func (f *Fence) adoptBeacon(e *nbio.Engine) (*beacon, *nbio.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("eventloop: beacon socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "beacon")
	conn, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("eventloop: beacon conn: %w", err)
	}
	b := &beacon{peer: fds[1], wake: make(chan struct{})}
	nc, err := e.AddConn(conn)
	if err != nil {
		_ = conn.Close()
		_ = syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("eventloop: beacon adopt: %w", err)
	}
	// No data can arrive before the first ping, which follows.
	nc.OnData(func(_ *nbio.Conn, data []byte) { b.echoed(len(data)) })
	return b, nc, nil
}

// Closed reports whether c is a beacon; the engine's close callback ignores
// c when it reports true. A beacon closes only when the engine stops, and
// releases whoever waits on it.
func (f *Fence) Closed(c net.Conn) bool {
	nc, ok := c.(*nbio.Conn)
	if !ok {
		return false
	}
	f.mu.Lock()
	b := f.beacons[nc]
	delete(f.beacons, nc)
	f.mu.Unlock()
	if b == nil {
		return false
	}
	b.kill()
	return true
}

// Stop releases the beacons whose close the engine did not report; call it
// once the engine has stopped.
func (f *Fence) Stop() {
	f.mu.Lock()
	beacons := f.beacons
	f.beacons = make(map[*nbio.Conn]*beacon)
	f.mu.Unlock()
	for _, b := range beacons {
		b.kill()
	}
}

// Outside runs op, which writes to or closes a connection of the engine from
// outside its pollers; closes says whether op closes it. A write that fails
// has closed it too: nbio closes a connection whose write fails.
func (f *Fence) Outside(closes bool, op func() error) error {
	f.gate.RLock()
	err := op()
	if closes || err != nil {
		f.closes.Add(1)
	}
	f.gate.RUnlock()
	return err
}

// Admit runs add, which hands a new connection to the engine, once no event
// of a connection closed before can reach it.
func (f *Fence) Admit(ctx context.Context, add func() error) error {
	// Most barriers run here, without holding up writers.
	if g := f.closes.Load(); g > f.covered.Load() {
		if err := f.barrier(ctx); err != nil {
			return err
		}
		f.cover(g)
	}
	f.gate.Lock()
	defer f.gate.Unlock()
	// Closes that slipped in since then; none can follow until Unlock.
	if g := f.closes.Load(); g > f.covered.Load() {
		if err := f.barrier(ctx); err != nil {
			return err
		}
		f.cover(g)
	}
	err := add()
	if err != nil {
		// A failed handover may have closed the connection here.
		f.closes.Add(1)
	}
	return err
}

func (f *Fence) cover(g uint64) {
	for {
		old := f.covered.Load()
		if old >= g || f.covered.CompareAndSwap(old, g) {
			return
		}
	}
}

// barrier returns once every poller has handled an event that happened
// after the call began, and so finished any batch fetched before.
func (f *Fence) barrier(ctx context.Context) error {
	f.mu.Lock()
	beacons := f.byPoller
	f.mu.Unlock()
	seqs := make([]uint64, len(beacons))
	for i, b := range beacons {
		seq, err := b.ping()
		if err != nil {
			return err
		}
		seqs[i] = seq
	}
	for i, b := range beacons {
		if err := b.await(ctx, seqs[i]); err != nil {
			return err
		}
	}
	return nil
}

// ping returns the number of a ping written after the call began: written
// now, or, while another is in flight, by the echo of that one.
func (b *beacon) ping() (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return 0, ErrFenceClosed
	}
	if b.sent > b.seen {
		b.next = true
		return b.sent + 1, nil
	}
	if err := b.writeLocked(); err != nil {
		return 0, err
	}
	return b.sent, nil
}

// writeLocked writes one ping. Caller must hold b.mu.
func (b *beacon) writeLocked() error {
	if _, err := syscall.Write(b.peer, []byte{0}); err != nil {
		return fmt.Errorf("eventloop: beacon ping: %w", err)
	}
	b.sent++
	return nil
}

// await returns once the poller has read seq pings. A later ping read
// first is as good: it too was sent after the barrier began.
func (b *beacon) await(ctx context.Context, seq uint64) error {
	for {
		b.mu.Lock()
		seen, dead, wake := b.seen, b.dead, b.wake
		b.mu.Unlock()
		switch {
		case seen >= seq:
			return nil
		case dead:
			return ErrFenceClosed
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("eventloop: poller did not answer: %w", ctx.Err())
		}
	}
}

func (b *beacon) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return
	}
	b.dead = true
	_ = syscall.Close(b.peer)
	b.notifyLocked()
}

func (b *beacon) echoed(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen += uint64(n)
	if b.next && b.seen >= b.sent && !b.dead {
		b.next = false
		if err := b.writeLocked(); err != nil {
			// Nothing else can wake the barriers waiting for this ping;
			// they fail as if the engine had stopped, and so does every
			// later Admit.
			b.dead = true
			_ = syscall.Close(b.peer)
		}
	}
	b.notifyLocked()
}

// notifyLocked wakes the waiters. Caller must hold b.mu.
func (b *beacon) notifyLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}
