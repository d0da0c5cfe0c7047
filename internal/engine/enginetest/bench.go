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
	data := []byte(`{"user":"ann","text":"hello, world","n":42}`)
	opts := engine.PublishOptions{HistorySize: 1000, HistoryTTL: time.Hour}
	setup := func(b *testing.B, channels int) (engine.Engine, []string) {
		ctx := context.Background()
		e := newEngine(b)
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
		return e, names
	}
	b.Run("serial", func(b *testing.B) {
		e, names := setup(b, 1)
		start := time.Now()
		for b.Loop() {
			if _, err := e.Publish(context.Background(), names[0], data, opts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
	})
	for _, channels := range []int{1, 1000} {
		b.Run(fmt.Sprintf("parallel/channels=%d", channels), func(b *testing.B) {
			e, names := setup(b, channels)
			var next atomic.Uint64
			b.SetParallelism(parallelism)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch := names[next.Add(1)%uint64(channels)]
					if _, err := e.Publish(context.Background(), ch, data, opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
		})
	}
}
