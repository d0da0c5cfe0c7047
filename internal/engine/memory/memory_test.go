package memory_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/enginetest"
	"github.com/heraldrt/herald/internal/engine/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	const presenceTTL = 300 * time.Millisecond
	enginetest.Run(t,
		func(*testing.T) engine.Engine { return memory.New(memory.Config{}) },
		enginetest.PresenceExpiry(presenceTTL, func(*testing.T) engine.Engine {
			return memory.New(memory.Config{PresenceTTL: presenceTTL})
		}),
	)
}
