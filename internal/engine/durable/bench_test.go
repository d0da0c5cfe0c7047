package durable_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/durable"
	"github.com/heraldrt/herald/internal/engine/enginetest"
)

// BenchmarkDurablePublishParallel measures acknowledged (synced) publishes
// per second from concurrent publishers (perCPU per GOMAXPROCS), on one
// channel and spread over many. Throughput comes from group commit, so it
// grows with the number of publishers sharing each sync.
func BenchmarkDurablePublishParallel(b *testing.B) {
	for _, channels := range []int{1, 1000} {
		for _, perCPU := range []int{8, 64} {
			name := fmt.Sprintf("channels=%d/publishers=%d", channels, perCPU*runtime.GOMAXPROCS(0))
			b.Run(name, func(b *testing.B) { benchmarkPublish(b, channels, perCPU) })
		}
	}
}

func benchmarkPublish(b *testing.B, channels, perCPU int) {
	ctx := context.Background()
	e, err := durable.Open(ctx, durable.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
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
	data := []byte(`{"user":"ann","text":"hello, world","n":42}`)
	opts := engine.PublishOptions{HistorySize: 1000, HistoryTTL: time.Hour}
	var next atomic.Uint64
	b.SetParallelism(perCPU)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch := names[next.Add(1)%uint64(channels)]
			if _, err := e.Publish(ctx, ch, data, opts); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
}
