package enginetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
)

// BenchmarkPublish measures stored publishes per second, delivered to a
// subscribed Discard handler, from one goroutine and from parallelism
// goroutines per CPU on one channel and on 1,000. newEngine returns a new,
// not yet started engine; the benchmark starts and closes it.
func BenchmarkPublish(b *testing.B, newEngine func(b *testing.B) engine.Engine, parallelism int) {
	b.Run("serial", func(b *testing.B) {
		e := newEngine(b)
		names := StartForBench(b, e, 1)
		start := time.Now()
		for b.Loop() {
			if _, err := e.Publish(context.Background(), names[0], benchData, benchOptions); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
	})
	for _, channels := range []int{1, 1000} {
		b.Run(fmt.Sprintf("parallel/channels=%d", channels), func(b *testing.B) {
			PublishParallel(b, newEngine(b), channels, parallelism)
		})
	}
}

var (
	benchData    = []byte(`{"user":"ann","text":"hello, world","n":42}`)
	benchOptions = engine.PublishOptions{HistorySize: 1000, HistoryTTL: time.Hour}
)

// StartForBench starts e with a Discard handler, closes it when b ends, and
// subscribes it to channels channels, whose names it returns.
func StartForBench(b *testing.B, e engine.Engine, channels int) []string {
	ctx := context.Background()
	b.Cleanup(func() { _ = e.Close(ctx) })
	if err := e.Start(ctx, "bench", Discard{}); err != nil {
		b.Fatal(err)
	}
	names := make([]string, channels)
	for i := range names {
		names[i] = fmt.Sprintf("bench:%d", i)
		if err := e.Subscribe(ctx, names[i]); err != nil {
			b.Fatal(err)
		}
	}
	return names
}

// PublishParallel starts e (see StartForBench) and publishes to its
// channels in turn from parallelism goroutines per CPU, reporting stored
// publishes per second.
func PublishParallel(b *testing.B, e engine.Engine, channels, parallelism int) {
	names := StartForBench(b, e, channels)
	var next atomic.Uint64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch := names[next.Add(1)%uint64(channels)]
			if _, err := e.Publish(context.Background(), ch, benchData, benchOptions); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
}
