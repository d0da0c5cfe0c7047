package bench

import (
	"context"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
)

// nbio starts its package-level engines' goroutines at init; ignoring what
// runs before the first test spares those and still catches anything a
// run leaves behind.
func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

const testAPIKey = "bench-test-key"

// startServer runs an in-process server on a memory engine, with a "bench"
// namespace open to anonymous subscribers and keeping history (polling
// needs it), and stops it when the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = "memory"
	cfg.Dev = true
	cfg.APIKey = testAPIKey
	cfg.LogLevel = "error"
	cfg.Namespaces = []node.NamespaceOptions{{
		Name:        "bench",
		HistorySize: 1000,
		HistoryTTL:  time.Hour,
		Subscribe:   node.AccessAnyone,
	}}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("server stopped: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return "http://" + srv.Addr()
}

var transports = []string{TransportWebSocket, TransportSSE, TransportLongPoll}
