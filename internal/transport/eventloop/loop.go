package eventloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
)

// This file is the only one that knows the poller is lesismal/nbio.

// ErrClosed is returned by writes to a connection that is closed.
var ErrClosed = errors.New("eventloop: connection closed")

// LoopConfig configures a Loop.
type LoopConfig struct {
	// Name labels the loop's pollers in diagnostics.
	Name string
	// MaxBufferedBytes bounds what one connection may have written but not
	// yet sent because its peer reads slowly; past it the connection is
	// closed (default 1 MiB).
	MaxBufferedBytes int
}

// Loop polls adopted connections. Create it with NewLoop, Start it, Adopt
// connections, and Shutdown it.
type Loop struct {
	engine *nbio.Engine
	fence  *Fence
	// mu orders Adopt against the close callback, so that a connection that
	// closes the instant it is adopted is reported only once its Conn is set
	// up, and against Shutdown: nbio must not take a connection while it
	// stops.
	mu      sync.Mutex
	stopped bool
}

// NewLoop returns a stopped loop.
func NewLoop(cfg LoopConfig) *Loop {
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = 1 << 20
	}
	l := &Loop{fence: NewFence()}
	l.engine = nbio.NewEngine(nbio.Config{
		Name:               cfg.Name,
		NPoller:            1,
		MaxWriteBufferSize: cfg.MaxBufferedBytes,
		// Adopted connections are push-only: a small shared read buffer is
		// enough to notice input and closes.
		ReadBufferSize: 512,
	})
	// Input on a push-only connection is ignored; reading it keeps the
	// kernel from holding it and lets the poller see the peer's close. Only
	// the fence's beacons have a handler of their own.
	l.engine.OnData(func(c *nbio.Conn, data []byte) {
		if h := c.DataHandler(); h != nil {
			h(c, data)
		}
	})
	// nbio reports here, under the connection's lock, what it handed to the
	// kernel, so WriteAndClose can close once its queue is empty and Blocked
	// knows the backlog.
	l.engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		conn, _ := c.Session().(*Conn)
		if conn == nil {
			return
		}
		conn.sent(n)
		if conn.unsent.Add(-int64(n)) == 0 && conn.closeWhenSent.Load() {
			// Close takes the lock held here; this only happens for a
			// response that a slow reader left queued.
			go conn.Close()
		}
	})
	l.engine.OnClose(func(c *nbio.Conn, err error) {
		if l.fence.Closed(c) {
			return
		}
		l.mu.Lock()
		conn, _ := c.Session().(*Conn)
		l.mu.Unlock()
		if conn != nil {
			conn.closed(err)
		}
	})
	return l
}

// Start starts the pollers and returns once they run, so a Shutdown that
// follows at once is never lost.
func (l *Loop) Start() error {
	if err := l.engine.Start(); err != nil {
		return fmt.Errorf("eventloop: start: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A poller that does not answer is not looping; Stop would hang on it.
	return l.fence.Start(ctx, l.engine, l.engine.NPoller)
}

// Shutdown closes every adopted connection and stops the pollers.
func (l *Loop) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	err := l.engine.Shutdown(ctx)
	l.fence.Stop()
	return err
}

// Adopt takes conn over: from now on the loop owns it, and onClose is called
// exactly once, from the loop, when the peer closes it, it fails, or Close is
// called. conn must not be used afterwards. Once Shutdown has begun Adopt
// fails with ErrFenceClosed, and conn stays the caller's to close.
func (l *Loop) Adopt(conn net.Conn, onClose func(error)) (*Conn, error) {
	c := &Conn{onClose: onClose, fence: l.fence}
	ctx, cancel := context.WithTimeout(context.Background(), adoptTimeout)
	defer cancel()
	err := l.fence.Admit(ctx, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.stopped {
			return ErrFenceClosed
		}
		nc, err := l.engine.AddConn(conn)
		if err != nil {
			return err
		}
		c.nc = nc
		nc.SetSession(c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eventloop: adopt: %w", err)
	}
	return c, nil
}

// adoptTimeout bounds how long Adopt waits for the pollers to finish the
// events they hold; they answer in microseconds unless the engine stopped.
const adoptTimeout = 5 * time.Second

// Conn is an adopted connection. Its methods are safe for concurrent use.
type Conn struct {
	nc        *nbio.Conn
	fence     *Fence
	onClose   func(error)
	closeOnce sync.Once
	// unsent counts the bytes WriteAndClose passed on that have not reached
	// the kernel yet; closeWhenSent asks for a close when it drops to zero.
	unsent        atomic.Int64
	closeWhenSent atomic.Bool
	// deadline closes a WriteAndClose whose peer does not read.
	deadline atomic.Pointer[time.Timer]
	// backlog counts the bytes Write passed on that have not reached the
	// kernel; drained runs when a backlog Blocked reported has fallen.
	backlog Backlog
	drained atomic.Pointer[func()]
}

// Write sends b, or queues what the socket cannot take yet; it never blocks.
// b may be reused when Write returns. A connection whose queue would exceed
// the loop's MaxBufferedBytes is closed and Write returns an error.
func (c *Conn) Write(b []byte) error {
	c.backlog.Add(len(b))
	err := c.fence.Outside(false, func() error {
		_, err := c.nc.Write(b)
		return err
	})
	if err != nil {
		c.sent(len(b))
		return errors.Join(ErrClosed, err)
	}
	return nil
}

// OnDrained sets what runs, once, when a backlog that Blocked reported
// falls to its low-water mark. It runs on a poller and must not block.
func (c *Conn) OnDrained(f func()) { c.drained.Store(&f) }

// Blocked reports whether more than high bytes written are still waiting
// for the peer to read them. When it reports true, the OnDrained function
// runs once the backlog has fallen to low.
func (c *Conn) Blocked(high, low int64) bool { return c.backlog.Blocked(high, low) }

// sent takes n bytes the kernel took off the backlog.
func (c *Conn) sent(n int) {
	if c.backlog.Sent(n) {
		if f := c.drained.Load(); f != nil {
			(*f)()
		}
	}
}

// WriteAndClose sends b as the connection's last write and closes it once all
// of b has gone to the kernel, or after timeout when the peer does not read
// it. It never blocks; Close would drop what is still queued.
func (c *Conn) WriteAndClose(b []byte, timeout time.Duration) error {
	// Not nbio's write deadline: its timer would close the connection
	// behind the fence.
	c.deadline.Store(time.AfterFunc(timeout, func() { _ = c.Close() }))
	c.unsent.Add(int64(len(b)))
	if err := c.Write(b); err != nil {
		return err
	}
	// Set after the write so the usual case, a write the kernel takes at
	// once, closes here rather than from the written callback.
	c.closeWhenSent.Store(true)
	if c.unsent.Load() == 0 {
		return c.Close()
	}
	return nil
}

// Close closes the connection; onClose follows.
func (c *Conn) Close() error { return c.fence.Outside(true, c.nc.Close) }

func (c *Conn) closed(err error) {
	c.closeOnce.Do(func() {
		if t := c.deadline.Load(); t != nil {
			t.Stop()
		}
		c.onClose(err)
	})
}
