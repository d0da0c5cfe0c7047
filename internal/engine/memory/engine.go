// Package memory is an in-process Herald engine for one node: history,
// presence and delivery live in this process's memory and vanish with it. It
// serves tests and ephemeral deployments, and its live delivery and presence
// are reused by engines that keep only history elsewhere (see Deliver).
package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/engine"
)

// DefaultPresenceTTL is the presence TTL used when Config.PresenceTTL is zero.
const DefaultPresenceTTL = time.Minute

// sweepInterval is how often expired history, idempotency keys, presence
// entries and idle channels are dropped. Reads filter expired entries
// themselves, so the sweep bounds memory; it is not needed for correctness.
const sweepInterval = time.Second

// Config configures an Engine. The zero value is ready to use.
type Config struct {
	// PresenceTTL is how long a presence entry lives unless AddPresence
	// refreshes it. Zero means DefaultPresenceTTL.
	PresenceTTL time.Duration
}

// Engine is an in-process engine. Create it with New; it is safe for
// concurrent use. A publication delivered to the handler shares its data
// with the engine's history and must not be modified; one returned by
// History is the caller's.
type Engine struct {
	channels channelMap
	delivery delivery
	presence presence

	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ engine.Engine = (*Engine)(nil)

// New returns a running engine. Its background goroutines (delivery and the
// expiry sweep) stop on Close.
func New(cfg Config) *Engine {
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	seed := maphash.MakeSeed()
	e := &Engine{stop: make(chan struct{})}
	e.channels.init(seed)
	e.presence.init(seed, cfg.PresenceTTL)
	e.delivery.init(seed)

	e.wg.Add(len(e.delivery.shards) + 1)
	for i := range e.delivery.shards {
		go func() {
			defer e.wg.Done()
			e.delivery.run(&e.delivery.shards[i], e.stop)
		}()
	}
	go func() {
		defer e.wg.Done()
		e.sweepLoop()
	}()
	return e
}

// Start begins delivering to h as node nodeID. It may be called only once.
func (e *Engine) Start(_ context.Context, nodeID string, h engine.Handler) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	if h == nil {
		return fmt.Errorf("memory: start: nil handler")
	}
	if !e.delivery.start(nodeID, h) {
		return fmt.Errorf("memory: start: already started")
	}
	return nil
}

// Close stops deliveries and the sweep, waiting for a handler call in
// progress to return; deliveries still queued are dropped. Later calls return
// engine.ErrClosed. Close is safe to call more than once.
func (e *Engine) Close(context.Context) error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		e.wg.Wait()
	})
	return nil
}

func (e *Engine) sweepLoop() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.channels.sweep(now)
			e.presence.sweep(now)
		}
	}
}
