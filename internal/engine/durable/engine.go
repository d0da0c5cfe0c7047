// Package durable is Herald's one-node persistent engine. History, offsets,
// epochs and idempotency keys live in an embedded Pebble store, and a publish
// is acknowledged only once it is synced to disk, so everything acknowledged
// survives a crash or kill -9. Subscriptions, presence, join/leave events and
// the control bus are in memory, as one node needs nothing more; they come
// from the memory engine.
package durable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/protocol"
)

// defaultIdempotencyTTL applies when a publish sets IdempotencyKey but no
// IdempotencyTTL: a key the caller bothered to send should protect a retry.
const defaultIdempotencyTTL = time.Minute

// idleStateTTL is how long a channel's cached meta outlives its last use.
// The meta stays on disk; evicting only bounds memory.
const idleStateTTL = time.Minute

// Config configures Open.
type Config struct {
	// Dir is the store's directory, created if missing. Only one engine may
	// have a directory open at a time.
	Dir string
	// PresenceTTL is how long a presence entry lives unless AddPresence
	// refreshes it. Zero means memory.DefaultPresenceTTL.
	PresenceTTL time.Duration
	// Logger receives the store's diagnostics. Nil means slog.Default().
	Logger *slog.Logger

	// fs is the store's file system, the disk when nil. Tests put the store
	// on a file system that can simulate a crash, to check what a sync kept.
	fs vfs.FS
}

// Engine is the durable engine. It is safe for concurrent use. Publications
// delivered to the handler are shared and must not be modified; History
// returns fresh copies.
type Engine struct {
	// lock is the store directory's lock, held from Open until Close.
	lock  *pebble.Lock
	db    *pebble.DB
	live  *memory.Engine
	cache channelCache
	w     *writer

	stopSweep chan struct{}
	swept     chan struct{}

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// mu guards db against Close while a reader uses it.
	mu     sync.RWMutex
	closed bool
}

var _ engine.Engine = (*Engine)(nil)

// Open opens (or creates) the store in cfg.Dir and starts the engine.
func Open(_ context.Context, cfg Config) (*Engine, error) {
	if cfg.Dir == "" {
		return nil, errors.New("durable: open: Config.Dir is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	fs := cfg.fs
	if fs == nil {
		fs = vfs.Default
	}
	if err := fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("durable: open: %w", err)
	}
	// Take the directory lock before Pebble starts anything: a pebble.Open
	// that fails on a held lock leaves a background goroutine behind.
	lock, err := pebble.LockDirectory(cfg.Dir, fs)
	if err != nil {
		return nil, fmt.Errorf("durable: open %s: store in use by another process? %w", cfg.Dir, err)
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{FS: fs, Logger: pebbleLogger{logger}, Lock: lock})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("durable: open %s: %w", cfg.Dir, err), lock.Close())
	}
	e := &Engine{
		db:        db,
		lock:      lock,
		live:      memory.New(memory.Config{PresenceTTL: cfg.PresenceTTL}),
		stopSweep: make(chan struct{}),
		swept:     make(chan struct{}),
	}
	e.cache.init(db)
	e.w = newWriter(db, &e.cache, e.live.Deliver)
	go e.w.run()
	go e.sweepLoop()
	return e, nil
}

// Start begins delivering to h as node nodeID.
func (e *Engine) Start(ctx context.Context, nodeID string, h engine.Handler) error {
	return e.live.Start(ctx, nodeID, h)
}

// Close stops the sweep, commits every publish already submitted, closes the
// store and stops deliveries. Later calls return engine.ErrClosed. It is safe
// to call more than once; the store's close error is returned each time.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		close(e.stopSweep)
		<-e.swept
		e.w.close()
		e.mu.Lock()
		e.closed = true
		e.closeErr = errors.Join(e.db.Close(), e.lock.Close())
		e.mu.Unlock()
		_ = e.live.Close(ctx) // never fails
		if e.closeErr != nil {
			e.closeErr = fmt.Errorf("durable: close: %w", e.closeErr)
		}
	})
	return e.closeErr
}

// Publish stores data when opts.HistorySize > 0 and returns once it is
// synced to disk; delivery to the handler follows. A publication that is not
// stored (HistorySize 0) is delivered without touching the disk, and its
// idempotency key, if any, lasts only as long as the process.
func (e *Engine) Publish(ctx context.Context, channel string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	if err := e.check(ctx, channel); err != nil {
		return protocol.StreamPosition{}, err
	}
	if opts.HistorySize <= 0 {
		return e.live.Publish(ctx, channel, data, opts)
	}
	// Copied because the writer and the handler use them after Publish
	// returns (if ctx ends first) and the caller may reuse its buffers.
	pub := &protocol.Publication{Channel: channel, Data: bytes.Clone(data), Tags: maps.Clone(opts.Tags)}
	if opts.Info != nil {
		info := *opts.Info
		info.Info = bytes.Clone(info.Info)
		pub.Info = &info
	}
	o := &op{kind: opPublish, channel: channel, pub: pub, opts: opts}
	if err := e.w.do(ctx, o); err != nil {
		return protocol.StreamPosition{}, err
	}
	return o.pos, nil
}

// RemoveHistory deletes the channel's stored publications, durably. The
// offset keeps rising afterwards and the epoch stays.
func (e *Engine) RemoveHistory(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.w.do(ctx, &op{kind: opRemove, channel: channel})
}

// Subscribe makes this node receive the channel's deliveries.
func (e *Engine) Subscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.Subscribe(ctx, channel)
}

// Unsubscribe stops the channel's deliveries to this node.
func (e *Engine) Unsubscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.Unsubscribe(ctx, channel)
}

// PublishJoin delivers a join event if this node is subscribed to channel.
func (e *Engine) PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.PublishJoin(ctx, channel, info)
}

// PublishLeave delivers a leave event if this node is subscribed to channel.
func (e *Engine) PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.PublishLeave(ctx, channel, info)
}

// AddPresence adds or refreshes a client in channel; presence is kept in
// memory and does not survive a restart, as the clients do not either.
func (e *Engine) AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.AddPresence(ctx, channel, info)
}

// RemovePresence removes a client from channel.
func (e *Engine) RemovePresence(ctx context.Context, channel, clientID string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	return e.live.RemovePresence(ctx, channel, clientID)
}

// Presence returns the channel's present clients by client id.
func (e *Engine) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	if err := e.check(ctx, channel); err != nil {
		return nil, err
	}
	return e.live.Presence(ctx, channel)
}

// PresenceStats counts the channel's present clients and distinct users.
func (e *Engine) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	if err := e.check(ctx, channel); err != nil {
		return engine.PresenceStats{}, err
	}
	return e.live.PresenceStats(ctx, channel)
}

// PublishControl delivers data to this node when toNode is empty or its id.
func (e *Engine) PublishControl(ctx context.Context, data []byte, toNode string) error {
	if e.closing.Load() {
		return engine.ErrClosed
	}
	return e.live.PublishControl(ctx, data, toNode)
}

// check reports why a call on channel cannot proceed. Channel names are
// validated here because they become store keys: a name with a 0x00 byte
// could reach into another channel's key range.
func (e *Engine) check(ctx context.Context, channel string) error {
	if e.closing.Load() {
		return engine.ErrClosed
	}
	if !protocol.ValidChannel(channel) {
		return protocol.ErrInvalidChannel.With("%q", channel)
	}
	return ctx.Err()
}

// pebbleLogger routes Pebble's logging to slog. Pebble's info messages
// (compactions, WAL recycling) are debug detail for Herald's operators.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable store errors and must not
// return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("durable: pebble: " + msg)
}
