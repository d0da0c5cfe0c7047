package memory_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/memory"
)

// BenchmarkMemoryPublish measures stored publishes per second, delivered to
// a subscribed no-op handler, from one goroutine and from one per CPU.
func BenchmarkMemoryPublish(b *testing.B) {
	enginetest.BenchmarkPublish(b, func(*testing.B) engine.Engine { return memory.New(memory.Config{}) }, 1)
}
