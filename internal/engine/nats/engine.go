package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
)

// DefaultPrefix is the subject and stream-name prefix when Config.Prefix is empty.
const DefaultPrefix = "herald"

// DefaultPresenceTTL is the presence TTL used when Config.PresenceTTL is zero.
const DefaultPresenceTTL = time.Minute

// DefaultMaxIdempotencyTTL is Config.MaxIdempotencyTTL's default.
const DefaultMaxIdempotencyTTL = 24 * time.Hour

// duplicateWindow is how long JetStream remembers message ids. The engine's
// own record decides whether an idempotency key is live; the window only has
// to outlast a race between two publishers of one key.
const duplicateWindow = 2 * time.Minute

// requestTimeout bounds a call to the server when the caller's context has
// no deadline, and the engine's own background requests.
const requestTimeout = 10 * time.Second

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Config configures an Engine. Every node sharing a server must use the
// same Prefix, PresenceTTL, HistoryMaxAge, MaxIdempotencyTTL and Replicas:
// the streams and buckets are shared, and the last node to start sets
// their configuration.
type Config struct {
	// URL is the server's URL, or a comma-separated list of a cluster's.
	URL string
	// Prefix starts every subject and stream name, so several Herald
	// deployments can share one server: letters, digits, '-' and '_'.
	// Empty means DefaultPrefix.
	Prefix string
	// PresenceTTL is how long a presence entry lives unless AddPresence
	// refreshes it. Zero means DefaultPresenceTTL.
	PresenceTTL time.Duration
	// Replicas is the number of servers that store each stream and bucket
	// (1, 3 or 5 in a cluster). Zero means 1.
	Replicas int
	// HistoryMaxAge, when set, is the stream's age limit: an upper bound on
	// storage for what a channel's publishes do not purge, such as the
	// messages of idle channels. It must be at least the longest HistoryTTL
	// in use; a channel idle longer loses its history and starts a new
	// epoch. Zero means no age limit.
	HistoryMaxAge time.Duration
	// MaxIdempotencyTTL caps the IdempotencyTTL of a publish, and is how long
	// the idempotency bucket keeps a record. Zero means
	// DefaultMaxIdempotencyTTL.
	MaxIdempotencyTTL time.Duration
	// Options are applied to the connection after the engine's defaults
	// (reconnect forever every half second), for credentials, TLS and the
	// like. They must not set connection event handlers, which the engine
	// replaces.
	Options []nats.Option
	// Logger receives connection events and background errors. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Engine is the NATS engine. Create it with New and Start it; it is safe
// for concurrent use. Publications it delivers or returns are shared and
// must not be modified.
type Engine struct {
	cfg   Config
	names names
	log   *slog.Logger

	// conn is set once Start has connected; calls before then fail.
	conn     atomic.Pointer[conn]
	started  atomic.Bool
	channels channelCache
	delivery delivery

	closed     atomic.Bool
	closeOnce  sync.Once
	stop       chan struct{}
	reconnects chan struct{} // one pending reconnect for the maintenance loop
	missing    chan struct{} // a call found the stream or a bucket gone
	connClosed chan struct{} // closed by the connection's ClosedHandler
	wg         sync.WaitGroup
}

// conn is the engine's connection and the JetStream handles made from it.
type conn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	history  jetstream.Stream
	presence jetstream.KeyValue
	idem     jetstream.KeyValue
}

var _ engine.Engine = (*Engine)(nil)

// New checks cfg and returns an engine that connects when started.
func New(cfg Config) (*Engine, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: new: Config.URL is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !validPrefix.MatchString(cfg.Prefix) {
		return nil, fmt.Errorf("nats: new: prefix %q: only letters, digits, '-' and '_' are allowed", cfg.Prefix)
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxIdempotencyTTL <= 0 {
		cfg.MaxIdempotencyTTL = DefaultMaxIdempotencyTTL
	}
	if cfg.HistoryMaxAge < 0 {
		return nil, errors.New("nats: new: Config.HistoryMaxAge is negative")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{
		cfg:        cfg,
		names:      newNames(cfg.Prefix),
		log:        log.With("engine", "nats"),
		stop:       make(chan struct{}),
		reconnects: make(chan struct{}, 1),
		missing:    make(chan struct{}, 1),
		connClosed: make(chan struct{}),
	}
	e.channels.init()
	e.delivery.init(e.names, e.log)
	return e, nil
}

// Start connects to the server, creates or updates the stream and buckets,
// and begins delivering to h as node nodeID. It may be called only once.
func (e *Engine) Start(ctx context.Context, nodeID string, h engine.Handler) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	if h == nil {
		return errors.New("nats: start: nil handler")
	}
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("nats: start: already started")
	}
	opts := append([]nats.Option{
		nats.Name("herald " + nodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}, e.cfg.Options...)
	opts = append(opts,
		nats.ReconnectHandler(func(*nats.Conn) { e.signalReconnect() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				e.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ErrorHandler(e.asyncError),
		nats.ClosedHandler(func(*nats.Conn) { close(e.connClosed) }),
	)
	nc, err := nats.Connect(e.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("nats: start: connect to %s: %w", e.cfg.URL, err)
	}
	c, err := e.setup(ctx, nc)
	if err == nil {
		err = e.delivery.start(ctx, c, nodeID, h)
	}
	if err != nil {
		nc.Close()
		<-e.connClosed
		return fmt.Errorf("nats: start: %w", err)
	}
	e.conn.Store(c)
	e.wg.Add(len(e.delivery.shards) + 2)
	for i := range e.delivery.shards {
		go func() {
			defer e.wg.Done()
			e.delivery.run(&e.delivery.shards[i], e.stop)
		}()
	}
	go func() {
		defer e.wg.Done()
		e.delivery.runControl(e.stop)
	}()
	go func() {
		defer e.wg.Done()
		e.maintain()
	}()
	return nil
}

// setup creates or updates the stream and buckets and opens handles to them.
func (e *Engine) setup(ctx context.Context, nc *nats.Conn) (*conn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &conn{nc: nc, js: js}
	if err := e.ensure(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// ensure creates the stream and buckets, or updates them to this engine's
// configuration, and stores their handles in c. It runs at start and after
// every reconnect, since the server may have come back without its data.
func (e *Engine) ensure(ctx context.Context, c *conn) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	dup := duplicateWindow
	if age := e.cfg.HistoryMaxAge; age > 0 && age < dup {
		dup = age // JetStream requires the window to fit in the age limit
	}
	n := e.names
	history, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        n.stream,
		Description: "Herald channel history",
		Subjects:    []string{n.historyPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
		MaxAge:      e.cfg.HistoryMaxAge,
		Duplicates:  dup,
		RePublish:   &jetstream.RePublish{Source: n.historyPrefix + ">", Destination: n.deliveryPrefix + ">"},
		// Direct gets may be answered by a lagging replica; History must
		// read what the leader has stored, or a node could miss a
		// publication between its subscription and its read.
		AllowDirect: false,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", n.stream, err)
	}
	presence, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      n.presence,
		Description: "Herald presence",
		TTL:         e.cfg.PresenceTTL,
		// One message per key: PresenceStats counts messages as keys.
		History: 1,
		// Presence is refreshed by the clients' nodes all the time; losing
		// it with a server restart costs at most one TTL of absence.
		Storage:  jetstream.MemoryStorage,
		Replicas: e.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", n.presence, err)
	}
	idem, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      n.idempotency,
		Description: "Herald idempotency keys",
		TTL:         e.cfg.MaxIdempotencyTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", n.idempotency, err)
	}
	c.history, c.presence, c.idem = history, presence, idem
	return nil
}

// Close stops deliveries, closes the connection and waits for the engine's
// goroutines, including a handler call in progress. Later calls return
// engine.ErrClosed. Close is safe to call more than once.
func (e *Engine) Close(ctx context.Context) error {
	var err error
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		if c := e.conn.Load(); c != nil {
			c.nc.Close()
			// The handler runs last on the connection's callback goroutine,
			// so once it has run the connection's goroutines are ending.
			select {
			case <-e.connClosed:
			case <-ctx.Done():
				err = fmt.Errorf("nats: close: %w", ctx.Err())
			}
		}
		e.wg.Wait()
	})
	return err
}

// client returns the connection for a call, or why the call cannot proceed.
func (e *Engine) client(ctx context.Context) (*conn, error) {
	if e.closed.Load() {
		return nil, engine.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := e.conn.Load()
	if c == nil {
		return nil, errors.New("nats: engine not started")
	}
	return c, nil
}

// fail wraps err from operation op, reporting engine.ErrClosed instead when
// the engine was closed under the call. An error saying the stream or a
// bucket is gone has the maintenance loop create it again, so the calls
// after this one work, in a new epoch for every channel.
func (e *Engine) fail(op string, err error) error {
	if e.closed.Load() {
		return fmt.Errorf("nats: %s: %w", op, engine.ErrClosed)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, nats.ErrNoResponders) {
		select {
		case e.missing <- struct{}{}:
		default:
		}
	}
	return fmt.Errorf("nats: %s: %w", op, err)
}

// signalReconnect hands a reconnect to the maintenance loop. It runs on the
// connection's callback goroutine, which must not wait on the server.
func (e *Engine) signalReconnect() {
	select {
	case e.reconnects <- struct{}{}:
	default:
	}
}

// asyncError handles errors the connection reports outside any call. A
// slow consumer means the delivery queue of a subscription overflowed and
// dropped messages: its channel is resynced.
func (e *Engine) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if e.closed.Load() {
		return // the delivery goroutines stopped first; their queues fill
	}
	if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
		if ch, ok := e.names.channelOfDelivery(sub.Subject); ok {
			e.log.Warn("delivery queue overflowed; resyncing channel", "channel", ch)
			e.delivery.resync(ch)
			return
		}
	}
	e.log.Error("NATS error", "err", err)
}

// maintain runs in the background until Close: after a reconnect, or when
// a call found the stream or a bucket gone, it makes sure the server has
// them and forgets cached channel tails (the server may have lost them);
// after a reconnect it also resyncs every subscribed channel. Meanwhile it
// evicts idle cached tails.
func (e *Engine) maintain() {
	tick := time.NewTicker(idleChannelTTL / 2)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
			e.channels.evictIdle(time.Now())
		case <-e.missing:
			e.restore(false)
		case <-e.reconnects:
			e.log.Info("reconnected to NATS", "server", e.conn.Load().nc.ConnectedUrlRedacted())
			e.restore(true)
		}
	}
}

// restore recreates what the server lacks and distrusts cached tails, then,
// after a reconnect, has every subscribed channel resynced.
func (e *Engine) restore(reconnected bool) {
	c := e.conn.Load()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	// The handles in c stay valid: a recreated stream keeps its name.
	if err := e.ensure(ctx, &conn{nc: c.nc, js: c.js}); err != nil && !e.closed.Load() {
		e.log.Error("restore the stream and buckets", "err", err)
	}
	e.channels.forget()
	if !reconnected {
		return
	}
	// The subscriptions were resent before the reconnect was reported; a
	// flush makes sure the server has them before the handler reads
	// history to repair its channels.
	if err := c.nc.FlushWithContext(ctx); err != nil && !e.closed.Load() {
		e.log.Warn("flush after reconnect", "err", err)
	}
	e.delivery.resyncAll()
}

// withTimeout gives ctx the engine's default deadline if it has none, as
// nats.go requires one for flushes and requests.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}
