// Package websocket is Herald's WebSocket transport (GET /ws): it upgrades
// requests of a standard net/http server and runs each connection as a
// duplex.Conn, which feeds the session the client's commands and writes
// what it queues, coalescing frames into as few messages as possible.
//
// The library's pollers read every connection (see nbio.go); commands and
// writes run on the duplex host's bounded pools. Connections that nbio
// cannot poll (TLS terminated by net/http) cost one reading goroutine each.
//
// The WebSocket library (lesismal/nbio) stays inside this package, behind
// the small library/events interfaces of socket.go and duplex.Socket.
package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/duplex"
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
	host  *duplex.Host
	log   *slog.Logger
	lib   library
	state atomic.Int32 // serverNew, serverRunning, serverStopped
}

const (
	serverNew int32 = iota
	serverRunning
	serverStopped
)

// New validates cfg and returns a Server that accepts no connection until Start.
func New(cfg Config) (*Server, error) {
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
	host, err := duplex.New(duplex.Config{
		Name:           "websocket",
		Node:           cfg.Node,
		Logger:         cfg.Logger,
		MaxMessageSize: cfg.MaxMessageSize,
		WriteTimeout:   cfg.WriteTimeout,
		MaxCoalesced:   maxCoalesced,
	})
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	s := &Server{host: host, log: cfg.Logger}
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
	s.host.Stop()
	err := s.lib.shutdown(ctx)
	if err == nil {
		err = s.host.Wait(ctx)
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
	// A token in the handshake (header, query or cookie) was checked by the
	// server before the upgrade; without one, the connect command brings it.
	cred, authenticated := node.CredentialsFrom(r.Context())
	c, err := s.host.Open(cred, authenticated)
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	if err := s.lib.upgrade(w, r, c); err != nil {
		s.log.DebugContext(r.Context(), "websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		c.Failed()
	}
}
