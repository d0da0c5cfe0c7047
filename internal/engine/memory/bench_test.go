package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/memory"
)

// BenchmarkMemoryPublish measures stored publishes per second, delivered to
// a subscribed no-op handler, from one goroutine and from many.
func BenchmarkMemoryPublish(b *testing.B) {
	data := []byte(`{"user":"ann","text":"hello, world","n":42}`)
	opts := engine.PublishOptions{HistorySize: 1000, HistoryTTL: time.Hour}
	setup := func(b *testing.B, channels int) (*memory.Engine, []string) {
		ctx := context.Background()
		e := memory.New(memory.Config{})
		b.Cleanup(func() { _ = e.Close(ctx) })
		if err := e.Start(ctx, "bench", enginetest.Discard{}); err != nil {
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
