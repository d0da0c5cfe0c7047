package redis_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/redis"
	"github.com/heraldrt/herald/internal/testkit"
)

// BenchmarkPublish measures stored publishes per second against a local
// redis-server, delivered to a subscribed no-op handler, from one goroutine
// and from many (32 per CPU): each publish is one script run, so the serial
// figure is bounded by the round trip and the parallel ones by pipelining.
func BenchmarkPublish(b *testing.B) {
	url, _ := testkit.StartRedis(b)
	enginetest.BenchmarkPublish(b, func(b *testing.B) engine.Engine {
		e, err := redis.New(redis.Config{URL: url, Prefix: testPrefix()})
		if err != nil {
			b.Fatal(err)
		}
		return e
	}, 32)
}
