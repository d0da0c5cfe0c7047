// Package websocket is Herald's WebSocket transport (GET /ws): it upgrades
// requests of a standard net/http server, runs one node.Session per
// connection, feeds it the client's commands and writes what it queues,
// coalescing frames into as few messages as possible.
//
// Goroutines are bounded, not per connection: the library's pollers read
// every connection (see nbio.go), commands run on one pool of
// 128×GOMAXPROCS goroutines and writes on another of 4×GOMAXPROCS, each
// connection using at most one goroutine of each at a time, so its commands
// stay in order and its writes never interleave. Pool goroutines exit when
// idle. Connections that nbio cannot poll (TLS terminated by net/http) cost
// one reading goroutine each.
//
// The WebSocket library (lesismal/nbio) stays inside this package, behind
// the small library/socket/events interfaces of socket.go.
package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// Config configures a Server. Zero values take the defaults documented on
// each field.
type Config struct {
	Node   *node.Node
	Logger *slog.Logger
	// MaxMessageSize bounds an inbound message in bytes (64 KiB + 4 KiB, room
	// for a maximal publication and its command envelope). A larger message
	// closes the connection with protocol.DisconnectMessageTooLarge.
	MaxMessageSize int
	// CheckOrigin decides whether a request's Origin may connect; nil allows
	// every origin.
	CheckOrigin func(r *http.Request) bool
	// WriteTimeout bounds how long a connection's write backlog may stay
	// above the transport's buffer bound, and how long a close handshake may
	// take, before the connection is dropped (10s).
	WriteTimeout time.Duration
}

const (
	defaultMaxMessageSize = 64<<10 + 4<<10
	defaultWriteTimeout   = 10 * time.Second
	// maxCoalesced caps an outbound message built from several frames; a
	// single larger frame is sent alone.
	maxCoalesced = 64 << 10
)

// Server is the WebSocket transport. Create it with New, mount it on the
// HTTP server's mux, call Start, and stop it with Shutdown after the node's
// Shutdown.
type Server struct {
	node          *node.Node
	log           *slog.Logger
	lib           library
	writeTimeout  time.Duration
	maxCoalesced  int
	maxInboxBytes int

	// commands runs the command lanes, which may block on the engine;
	// writers runs the flush lanes, which never block.
	commands *eventloop.Pool
	writers  *eventloop.Pool
	buffers  sync.Pool // *flushBuffer

	// ctx is the parent of every command's context; cancelled by Shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	state atomic.Int32 // serverNew, serverRunning, serverStopped

	mu      sync.Mutex
	clients map[*client]struct{}
	emptied chan struct{} // closed and cleared when clients becomes empty
}

const (
	serverNew int32 = iota
	serverRunning
	serverStopped
)

// flushBuffer is the scratch space of one flush: the drained items and the
// coalesced message. Flushes borrow it from a pool, so an idle connection
// holds neither.
type flushBuffer struct {
	items []node.Item
	msg   []byte
}

// New validates cfg and returns a Server that accepts no connection until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("websocket: Config.Node is required")
	}
	if cfg.MaxMessageSize < 0 || cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("websocket: negative MaxMessageSize (%d) or WriteTimeout (%v)", cfg.MaxMessageSize, cfg.WriteTimeout)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = defaultMaxMessageSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	procs := runtime.GOMAXPROCS(0)
	s := &Server{
		node:         cfg.Node,
		log:          cfg.Logger,
		writeTimeout: cfg.WriteTimeout,
		maxCoalesced: maxCoalesced,
		// Room for a handful of maximal commands waiting behind a slow one.
		maxInboxBytes: max(8*cfg.MaxMessageSize, 1<<20),
		// Commands mostly wait on I/O (fsync, Redis round trips), so many
		// may be in flight per CPU; flushes only copy and write.
		commands: eventloop.NewPool(128 * procs),
		writers:  eventloop.NewPool(4 * procs),
		ctx:      ctx,
		cancel:   cancel,
		clients:  make(map[*client]struct{}),
	}
	s.lib = newNBIO(nbioConfig{
		maxMessage:   cfg.MaxMessageSize,
		maxFrame:     maxCoalesced,
		closeTimeout: cfg.WriteTimeout,
		checkOrigin:  cfg.CheckOrigin,
	})
	return s, nil
}

// Start starts the WebSocket library's pollers. ServeHTTP refuses upgrades
// before Start and after Shutdown.
func (s *Server) Start() error {
	if !s.state.CompareAndSwap(serverNew, serverRunning) {
		return errors.New("websocket: Start called twice or after Shutdown")
	}
	if err := s.lib.start(); err != nil {
		s.state.Store(serverStopped)
		return fmt.Errorf("websocket: start: %w", err)
	}
	return nil
}

// Shutdown closes every connection and stops the library. Call it after
// node.Shutdown, which has already told each session to go (close code
// 4000) and flushed what it could; connections still open here are dropped.
// It waits for every session to be finished and every goroutine of the
// transport to end, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.state.Store(serverStopped)
	for _, c := range s.snapshot() {
		c.abortSocket()
	}
	err := s.lib.shutdown(ctx)
	if err == nil {
		err = s.waitClients(ctx)
	}
	s.cancel()
	if err == nil {
		err = s.commands.Wait(ctx)
	}
	if err == nil {
		err = s.writers.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("websocket: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP upgrades the request to a WebSocket connection carrying a new
// bidirectional session. It answers 503 when the server or the node is
// shutting down; the library answers handshake errors itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.state.Load() != serverRunning {
		protocol.WriteHTTPError(w, protocol.ErrShuttingDown)
		return
	}
	c := newClient(s)
	// A token in the handshake (header, query or cookie) was checked by the
	// server before the upgrade; without one, the connect command brings it.
	cred, authenticated := node.CredentialsFrom(r.Context())
	sess, err := s.node.NewSession(c, node.SessionOptions{Bidirectional: true, Credentials: cred, Authenticated: authenticated})
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	c.sess = sess
	if !s.register(c) {
		sess.Finish()
		protocol.WriteHTTPError(w, protocol.ErrShuttingDown)
		return
	}
	if err := s.lib.upgrade(w, r, c); err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		c.upgradeFailed()
	}
}

// register adds c to the clients Shutdown waits for, unless shutting down.
func (s *Server) register(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() != serverRunning {
		return false
	}
	s.clients[c] = struct{}{}
	return true
}

func (s *Server) forget(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, c)
	if len(s.clients) == 0 && s.emptied != nil {
		close(s.emptied)
		s.emptied = nil
	}
}

func (s *Server) snapshot() []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}

func (s *Server) waitClients(ctx context.Context) error {
	s.mu.Lock()
	if len(s.clients) == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.emptied == nil {
		s.emptied = make(chan struct{})
	}
	ch := s.emptied
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) getBuffer() *flushBuffer {
	if b, ok := s.buffers.Get().(*flushBuffer); ok {
		return b
	}
	return &flushBuffer{msg: make([]byte, 0, s.maxCoalesced)}
}

// putBuffer returns b for reuse, minus references to frames (which would pin
// their memory) and minus an item slice grown by an exceptional burst.
func (s *Server) putBuffer(b *flushBuffer) {
	clear(b.items)
	if cap(b.items) > 4096 {
		b.items = nil
	}
	b.items = b.items[:0]
	s.buffers.Put(b)
}
