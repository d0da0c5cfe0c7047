package nats_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newEngine returns an unstarted engine on srv under a prefix of its own,
// so engines sharing the server share nothing else.
func newEngine(t testing.TB, srv *testkit.NATSServer, cfg nats.Config) *nats.Engine {
	t.Helper()
	cfg.URL = srv.URL
	if cfg.Prefix == "" {
		cfg.Prefix = testkit.NATSPrefix()
		removeStreamsAfter(t, srv, cfg.Prefix)
	}
	e, err := nats.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// removeStreamsAfter deletes prefix's stream and buckets when the test ends,
// if srv is an external server that outlives the test.
func removeStreamsAfter(t testing.TB, srv *testkit.NATSServer, prefix string) {
	if os.Getenv(testkit.NATSEnv) == "" {
		return // the test's own server goes with its data
	}
	t.Cleanup(func() {
		nc, err := natsgo.Connect(srv.URL)
		if err != nil {
			t.Errorf("connect to remove test streams: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("remove test streams: %v", err)
			return
		}
		for _, name := range []string{prefix + "_history", "KV_" + prefix + "_presence", "KV_" + prefix + "_idempotency"} {
			if err := js.DeleteStream(context.Background(), name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("remove test stream %s: %v", name, err)
			}
		}
	})
}

func TestConformance(t *testing.T) {
	srv := testkit.StartNATS(t)
	const presenceTTL = 300 * time.Millisecond
	enginetest.Run(t,
		func(t *testing.T) engine.Engine { return newEngine(t, srv, nats.Config{}) },
		enginetest.PresenceExpiry(presenceTTL, func(t *testing.T) engine.Engine {
			return newEngine(t, srv, nats.Config{PresenceTTL: presenceTTL})
		}),
	)
}
