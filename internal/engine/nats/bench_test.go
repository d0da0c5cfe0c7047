package nats_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/testkit"
)

// BenchmarkPublish measures stored publishes per second against a local
// nats-server, delivered to a subscribed no-op handler, from one goroutine
// and from many. Each publish waits for a round trip to the server, so the
// parallel runs use 16 goroutines per CPU to keep the server busy.
func BenchmarkPublish(b *testing.B) {
	srv := testkit.StartNATS(b)
	enginetest.BenchmarkPublish(b, func(b *testing.B) engine.Engine {
		return newEngine(b, srv, nats.Config{})
	}, 16)
}
