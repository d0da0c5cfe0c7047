// Package servertest runs a Herald server in the test's process, as
// net/http/httptest does for handlers: started on a free loopback port and
// stopped gracefully when the test ends.
package servertest

import (
	"context"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/server"
)

// Server is a running in-process Herald server.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:<port>".
	URL string
	// Addr is its host:port.
	Addr string

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start runs a server with cfg, on a free loopback port when cfg.Addr is
// empty, and returns once it listens. The test fails if it cannot start;
// Stop runs when the test ends.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.TURN.Addr == server.Defaults().TURN.Addr {
		// Tests run servers side by side: never the standard TURN port.
		cfg.TURN.Addr = "127.0.0.1:0"
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-s.done:
		cancel()
		t.Fatalf("server stopped before listening: %v", err)
	}
	s.Addr = srv.Addr()
	s.URL = "http://" + s.Addr
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return s
}

// Stop shuts the server down gracefully (clients are told to reconnect) and
// returns Run's error. Later calls return the same error.
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.cancel()
		s.err = <-s.done
	})
	return s.err
}
