package bench

import (
	"os"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
)

// nbio starts its package-level engines' goroutines at init; ignoring what
// runs before the first test spares those and still catches anything a
// run leaves behind.
func TestMain(m *testing.M) {
	if spec := os.Getenv(floorReaderEnv); spec != "" {
		runFloorReader(spec)
		return
	}
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
	// The generator opens many connections from one address at once.
	cfg.ConnectionRate = 0
	cfg.APIKey = testAPIKey
	cfg.LogLevel = "error"
	cfg.Namespaces = []node.NamespaceOptions{{
		Name:        "bench",
		HistorySize: 1000,
		HistoryTTL:  time.Hour,
		Subscribe:   node.AccessAnyone,
	}}
	return servertest.Start(t, cfg).URL
}

var transports = []string{TransportWebSocket, TransportSSE, TransportLongPoll}
