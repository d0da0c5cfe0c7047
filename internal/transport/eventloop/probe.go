package eventloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"
)

// PollerProbe proves that an nbio engine's pollers are running their loops.
// An nbio poller clears its stop flag when its loop starts, so an
// Engine.Stop issued before every loop has started is lost and Stop never
// returns (a server told to stop right after it started would hang). Once
// Run has returned, Stop is safe.
//
// Run hands each poller one end of a socket pair and closes the other end;
// the poller can only report that close from inside its loop. The engine's
// owner must pass its close callbacks through Closed, and leave alone the
// connections Owns reports while Run is in progress.
type PollerProbe struct {
	mu      sync.Mutex
	running bool
	pending map[net.Conn]chan struct{}
}

// NewPollerProbe returns an idle probe.
func NewPollerProbe() *PollerProbe {
	return &PollerProbe{pending: make(map[net.Conn]chan struct{})}
}

// Owns reports whether c may be a probe connection: a Unix socket adopted
// while Run is in progress. Engines that serve only TCP see no other.
func (p *PollerProbe) Owns(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running && c.LocalAddr().Network() == "unix"
}

// Closed reports whether c is a probe connection, recording its close; the
// owner's close callback ignores c when it reports true.
func (p *PollerProbe) Closed(c net.Conn) bool {
	p.mu.Lock()
	ch, ok := p.pending[c]
	delete(p.pending, c)
	p.mu.Unlock()
	if ok {
		close(ch)
	}
	return ok
}

// Run returns once each of the engine's pollers has reported a probe's
// close from its loop, or when ctx ends.
func (p *PollerProbe) Run(ctx context.Context, e *nbio.Engine, pollers int) error {
	p.mu.Lock()
	p.running = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
	seen := make(map[int]bool, pollers)
	// Pollers are picked by file descriptor; a few extra pairs cover them all.
	for tries := 0; len(seen) < pollers; tries++ {
		if tries == 16*pollers {
			return fmt.Errorf("eventloop: probe reached %d of %d pollers", len(seen), pollers)
		}
		idx, err := p.probeOnce(ctx, e)
		if err != nil {
			return err
		}
		seen[idx%pollers] = true
	}
	return nil
}

// probeOnce adopts one probe connection, closes its peer and waits for the
// poller to report the close; it returns the connection's hash, by which
// nbio picked the poller.
func (p *PollerProbe) probeOnce(ctx context.Context, e *nbio.Engine) (int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("eventloop: probe socketpair: %w", err)
	}
	ours, peer := os.NewFile(uintptr(fds[0]), "probe"), os.NewFile(uintptr(fds[1]), "probe-peer")
	defer peer.Close()
	conn, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		return 0, fmt.Errorf("eventloop: probe conn: %w", err)
	}
	nc, err := e.AddConn(conn)
	if err != nil {
		_ = conn.Close()
		return 0, fmt.Errorf("eventloop: probe adopt: %w", err)
	}
	closed := make(chan struct{})
	p.mu.Lock()
	p.pending[nc] = closed
	p.mu.Unlock()
	if err := peer.Close(); err != nil {
		return 0, errors.Join(fmt.Errorf("eventloop: probe close: %w", err), nc.Close())
	}
	select {
	case <-closed:
		return nc.Hash(), nil
	case <-ctx.Done():
		p.Closed(nc)
		return 0, fmt.Errorf("eventloop: probe: %w", ctx.Err())
	}
}
