package durable_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

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
	e, err := durable.Open(context.Background(), durable.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	enginetest.PublishParallel(b, e, channels, perCPU)
}
