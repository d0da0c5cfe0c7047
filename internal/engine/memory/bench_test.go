package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/memory"
)

// BenchmarkMemoryPublish measures stored publishes per second, delivered to
// a subscribed no-op handler, from one goroutine and from one per CPU.
func BenchmarkMemoryPublish(b *testing.B) {
	enginetest.BenchmarkPublish(b, func(*testing.B) engine.Engine { return memory.New(memory.Config{}) }, 1)
}

// BenchmarkHistoryMark times a full collection with 1,000,000 publications
// retained (10,000 channels × 100, 64-byte data), the shape of `herald bench
// spread`: what a GC cycle costs depends on how many objects history keeps.
func BenchmarkHistoryMark(b *testing.B) {
	ctx := context.Background()
	e := memory.New(memory.Config{})
	defer e.Close(ctx)
	data := []byte(`"` + strings.Repeat("x", 62) + `"`)
	opts := engine.PublishOptions{HistorySize: 100, HistoryTTL: 10 * time.Minute}
	for c := range 10_000 {
		name := fmt.Sprintf("bench:%d", c)
		for range 100 {
			if _, err := e.Publish(ctx, name, data, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	heap := []metrics.Sample{{Name: "/gc/heap/objects:objects"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(heap)
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(heap[0].Value.Uint64()), "heap-objects")
	b.ReportMetric(float64(heap[1].Value.Uint64())/(1<<20), "live-MiB")
}
