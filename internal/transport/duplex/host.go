// Package duplex runs node sessions over bidirectional, message-oriented
// connections: the WebSocket transport and the WebRTC data-channel
// transport share it, each bringing only its library behind Socket.
//
// Goroutines are bounded, not per connection: commands run on one pool of
// 128×GOMAXPROCS goroutines and writes on another of 4×GOMAXPROCS, each
// connection using at most one goroutine of each at a time, so its commands
// stay in order and its writes never interleave. Pool goroutines exit when
// idle.
package duplex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// Config configures a Host. Zero values take the defaults documented on
// each field.
type Config struct {
	// Name is the transport's name in logs and metrics ("websocket").
	Name   string
	Node   *node.Node
	Logger *slog.Logger
	// MaxMessageSize is the transport's bound on an inbound message (64 KiB
	// + 4 KiB); the commands a connection may have waiting are bounded by a
	// multiple of it.
	MaxMessageSize int
	// WriteTimeout bounds how long a connection's write backlog may stay
	// above its socket's high-water mark before the connection is dropped
	// as a slow consumer (10s).
	WriteTimeout time.Duration
	// MaxCoalesced caps an outbound message built from several frames; a
	// single larger frame is sent alone (64 KiB).
	MaxCoalesced int
}

const (
	defaultMaxMessageSize = 64<<10 + 4<<10
	defaultWriteTimeout   = 10 * time.Second
	defaultMaxCoalesced   = 64 << 10
)

// Host owns a transport's connections and the pools that serve them. Open
// adds a connection; Stop and Wait end them all.
type Host struct {
	name          string
	node          *node.Node
	log           *slog.Logger
	writeTimeout  time.Duration
	maxCoalesced  int
	maxInboxBytes int

	// commands runs the command lanes, which may block on the engine;
	// writers runs the flush lanes, which never block.
	commands *eventloop.Pool
	writers  *eventloop.Pool
	buffers  sync.Pool // *flushBuffer

	// ctx is the parent of every command's context; cancelled by Wait.
	ctx    context.Context
	cancel context.CancelFunc

	conns Tracker[*Conn]
}

// flushBuffer is the scratch space of one flush: the drained items and the
// coalesced message. Flushes borrow it from a pool, so an idle connection
// holds neither.
type flushBuffer struct {
	items []node.Item
	msg   []byte
	// superseded counts the items writeItems skipped for a newer
	// latest-only publication of their channel.
	superseded int
}

// New validates cfg and returns a Host that accepts connections until Stop.
func New(cfg Config) (*Host, error) {
	if cfg.Node == nil {
		return nil, errors.New("duplex: Config.Node is required")
	}
	if cfg.MaxMessageSize < 0 || cfg.WriteTimeout < 0 || cfg.MaxCoalesced < 0 {
		return nil, fmt.Errorf("duplex: negative MaxMessageSize (%d), WriteTimeout (%v) or MaxCoalesced (%d)", cfg.MaxMessageSize, cfg.WriteTimeout, cfg.MaxCoalesced)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = defaultMaxMessageSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxCoalesced == 0 {
		cfg.MaxCoalesced = defaultMaxCoalesced
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	procs := runtime.GOMAXPROCS(0)
	return &Host{
		name:         cfg.Name,
		node:         cfg.Node,
		log:          cfg.Logger,
		writeTimeout: cfg.WriteTimeout,
		maxCoalesced: cfg.MaxCoalesced,
		// Room for a handful of maximal commands waiting behind a slow one.
		maxInboxBytes: max(8*cfg.MaxMessageSize, 1<<20),
		// Commands mostly wait on I/O (fsync, Redis round trips), so many
		// may be in flight per CPU, plus every backend request commands may
		// wait for; flushes only copy and write.
		commands: eventloop.NewPool(128*procs + cfg.Node.BlockingProxyCalls()),
		writers:  eventloop.NewPool(4 * procs),
		ctx:      ctx,
		cancel:   cancel,
	}, nil
}

// Open starts the session of a new connection, whose socket is attached
// later (Conn.Attach). A token the transport found in its request was
// checked already: cred and authenticated carry it; without one, the
// connect command brings it. It fails with protocol.ErrShuttingDown once
// Stop has begun or the node is draining.
func (h *Host) Open(cred node.Credentials, authenticated bool) (*Conn, error) {
	if h.conns.Stopped() {
		return nil, protocol.ErrShuttingDown
	}
	c := &Conn{host: h}
	c.flusher.Init(h.writers, c.flushOnce)
	sess, err := h.node.NewSession(c, node.SessionOptions{Bidirectional: true, Credentials: cred, Authenticated: authenticated})
	if err != nil {
		return nil, err
	}
	c.sess = sess
	if !h.conns.Add(c) {
		sess.Finish()
		return nil, protocol.ErrShuttingDown
	}
	return c, nil
}

// Stop refuses new connections and drops every open one at once. Call it
// after node.Shutdown, which has already told each session to go (close
// code 4000) and flushed what it could.
func (h *Host) Stop() {
	for _, c := range h.conns.Stop() {
		c.abortSocket()
	}
}

// Wait waits, after Stop and after the socket library has delivered every
// close, for every session to be finished and every goroutine of the pools
// to end, or for ctx.
func (h *Host) Wait(ctx context.Context) error {
	err := h.conns.Wait(ctx)
	h.cancel()
	if err == nil {
		err = h.commands.Wait(ctx)
	}
	if err == nil {
		err = h.writers.Wait(ctx)
	}
	return err
}

// Stopped reports whether Stop has begun.
func (h *Host) Stopped() bool { return h.conns.Stopped() }

func (h *Host) getBuffer() *flushBuffer {
	if b, ok := h.buffers.Get().(*flushBuffer); ok {
		return b
	}
	return &flushBuffer{msg: make([]byte, 0, h.maxCoalesced)}
}

// putBuffer returns b for reuse, minus references to frames (which would pin
// their memory) and minus an item slice grown by an exceptional burst.
func (h *Host) putBuffer(b *flushBuffer) {
	clear(b.items)
	if cap(b.items) > 4096 {
		b.items = nil
	}
	b.items = b.items[:0]
	h.buffers.Put(b)
}
