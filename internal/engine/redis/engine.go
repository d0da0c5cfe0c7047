package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// Defaults for the zero values of Config.
const (
	DefaultPrefix         = "herald"
	DefaultPresenceTTL    = time.Minute
	DefaultHistoryMetaTTL = 30 * 24 * time.Hour
)

// maxFlushDelay lets rueidis's writer wait this long for more commands
// before a write, so concurrent calls share system calls and round trips.
// Measured with BenchmarkPublish on a 2-CPU machine: parallel publishes
// gained up to a third, serial ones lost nothing measurable.
const maxFlushDelay = 20 * time.Microsecond

//go:embed lua/publish.lua
var publishLua string

//go:embed lua/history.lua
var historyLua string

//go:embed lua/presence.lua
var presenceLua string

// Config configures an Engine.
type Config struct {
	// URL locates Redis; the package documentation lists its forms.
	URL string
	// Prefix starts every key and pub/sub channel name, so deployments can
	// share a Redis. It must not contain braces. Empty means DefaultPrefix.
	Prefix string
	// PresenceTTL is how long a presence entry lives unless AddPresence
	// refreshes it. Zero means DefaultPresenceTTL.
	PresenceTTL time.Duration
	// HistoryMetaTTL is how long a channel's epoch and offset are kept after
	// its last publish or history read (and never less than its history).
	// When they expire the channel starts over in a new epoch. Zero means
	// DefaultHistoryMetaTTL.
	HistoryMetaTTL time.Duration
	// Logger receives connection problems. Nil means slog.Default().
	Logger *slog.Logger
}

// Engine is the Redis engine. Create it with New and call Start before
// anything else; it is safe for concurrent use. Publications delivered to
// the handler are shared and must not be modified.
type Engine struct {
	cfg    Config
	prefix string
	opt    rueidis.ClientOption
	log    *slog.Logger

	publishScript  *rueidis.Lua
	historyScript  *rueidis.Lua
	presenceScript *rueidis.Lua

	// Set by Start before started is; read only after started is seen.
	client  rueidis.Client
	nodeID  string
	sharded bool // SPUBLISH/SSUBSCRIBE rather than PUBLISH/SUBSCRIBE
	subs    *subscriber

	// classicPubSub makes the engine use classic pub/sub even where sharded
	// pub/sub exists, so tests on Redis 7 cover what Redis 6 servers use.
	classicPubSub bool

	delivery delivery

	starting  atomic.Bool
	started   atomic.Bool
	closed    atomic.Bool
	ctx       context.Context // canceled by Close; bounds background work
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ engine.Engine = (*Engine)(nil)

var errNotStarted = errors.New("redis: engine not started")

// New checks cfg and returns an engine that connects when started.
func New(cfg Config) (*Engine, error) {
	if cfg.URL == "" {
		return nil, errors.New("redis: Config.URL is required")
	}
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		// A *url.Error quotes the URL, password included: keep its reason.
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return nil, fmt.Errorf("redis: parse Config.URL: %w", err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redis: Config.Prefix %q contains a brace, which would change the keys' cluster hash tag", cfg.Prefix)
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.HistoryMetaTTL <= 0 {
		cfg.HistoryMetaTTL = DefaultHistoryMetaTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The engine never uses client-side caching, which would otherwise
	// cost a tracking round trip on every connection.
	opt.DisableCache = true
	if opt.MaxFlushDelay == 0 {
		opt.MaxFlushDelay = maxFlushDelay
	}

	e := &Engine{
		cfg:            cfg,
		prefix:         cfg.Prefix,
		opt:            opt,
		log:            cfg.Logger,
		publishScript:  rueidis.NewLuaScript(publishLua),
		historyScript:  rueidis.NewLuaScript(historyLua),
		presenceScript: rueidis.NewLuaScript(presenceLua),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.delivery.init()
	return e, nil
}

// Start connects to Redis and begins delivering to h as node nodeID: it
// subscribes to the control bus and returns once Redis has confirmed that.
// It may be called only once.
func (e *Engine) Start(ctx context.Context, nodeID string, h engine.Handler) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	if h == nil {
		return errors.New("redis: start: nil handler")
	}
	if !e.starting.CompareAndSwap(false, true) {
		return errors.New("redis: start: already started")
	}
	client, err := e.connect()
	if err != nil {
		return err
	}
	e.client, e.nodeID = client, nodeID
	if err := e.start(ctx, h); err != nil {
		_ = e.Close(context.Background())
		return err
	}
	e.started.Store(true)
	return nil
}

func (e *Engine) start(ctx context.Context, h engine.Handler) error {
	major, minor, err := e.serverVersion(ctx)
	if err != nil {
		return err
	}
	// The scripts page streams with exclusive ranges and trim by id.
	if major < 6 || major == 6 && minor < 2 {
		return fmt.Errorf("redis: start: the server is Redis %d.%d, the engine needs 6.2 or later", major, minor)
	}
	e.sharded = major >= 7 && !e.classicPubSub
	cluster := e.client.Mode() == rueidis.ClientModeCluster
	if cluster && !e.sharded {
		return fmt.Errorf("redis: start: Redis Cluster needs sharded pub/sub, from Redis 7 on; the server is %d.%d", major, minor)
	}
	e.delivery.start(e, h)
	e.subs = newSubscriber(e, cluster)
	if err := e.subs.start(ctx); err != nil {
		return err
	}
	return e.startControl(ctx)
}

// connect makes the client. Several cluster seeds are tried one at a time:
// given them all, rueidis dials them at once and keeps adding the slower
// ones after it returned, racing its first slot refresh, which then leaves
// a goroutine behind for five seconds (rueidis v1.0.79).
func (e *Engine) connect() (rueidis.Client, error) {
	seeds := e.opt.InitAddress
	if len(seeds) == 1 || e.opt.Sentinel.MasterSet != "" {
		client, err := rueidis.NewClient(e.opt)
		if err != nil {
			return nil, fmt.Errorf("redis: connect to %s: %w", strings.Join(seeds, ","), err)
		}
		return client, nil
	}
	var errs []error
	for _, seed := range seeds {
		opt := e.opt
		opt.InitAddress = []string{seed}
		client, err := rueidis.NewClient(opt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		if client.Mode() != rueidis.ClientModeCluster {
			client.Close()
			return nil, fmt.Errorf("redis: connect: %s is not a cluster node, but Config.URL names several addresses", seed)
		}
		return client, nil
	}
	return nil, fmt.Errorf("redis: connect to the cluster: %w", errors.Join(errs...))
}

// serverVersion returns the major and minor version of the Redis server.
func (e *Engine) serverVersion(ctx context.Context) (major, minor int, err error) {
	info, err := e.client.Do(ctx, e.client.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return 0, 0, fmt.Errorf("redis: start: read server version: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			parts := strings.SplitN(v, ".", 3)
			major, err1 := strconv.Atoi(parts[0])
			if len(parts) > 1 {
				minor, _ = strconv.Atoi(parts[1])
			}
			if err1 == nil {
				return major, minor, nil
			}
		}
	}
	return 0, 0, errors.New("redis: start: the server did not report redis_version")
}

// Close stops deliveries and subscriptions, waits for the engine's
// goroutines to end (a handler call in progress returns first) and closes
// the connections. Queued deliveries are dropped. Later calls return
// engine.ErrClosed. Close is safe to call more than once.
func (e *Engine) Close(context.Context) error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		e.cancel()
		e.wg.Wait()
		if e.client != nil {
			e.client.Close()
		}
	})
	return nil
}

// check reports why a call on channel cannot proceed: the engine is closed
// or not started, the channel name is invalid or ctx is done.
func (e *Engine) check(ctx context.Context, channel string) error {
	if err := e.ready(ctx); err != nil {
		return err
	}
	if !protocol.ValidChannel(channel) {
		return protocol.ErrInvalidChannel.With("%q", channel)
	}
	return nil
}

func (e *Engine) ready(ctx context.Context) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	if !e.started.Load() {
		return errNotStarted
	}
	return ctx.Err()
}

// wrap turns a failure of a call on the Redis client into the engine's
// error: ErrClosed when Close caused it.
func (e *Engine) wrap(err error, format string, args ...any) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return fmt.Errorf("redis: "+format+": %w", append(args, err)...)
}

// sleep waits for d, reporting false if the engine closed meanwhile.
func (e *Engine) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reconnection backoff: doubling from minBackoff to maxBackoff.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, minBackoff), maxBackoff)
}
