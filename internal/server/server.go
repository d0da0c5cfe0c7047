// Package server assembles a Herald server from its configuration: the
// engine, the node, the transports, the APIs and the demo page behind one
// HTTP listener, with graceful shutdown. It also loads and writes the
// configuration (Load, WriteConfig).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/api"
	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/durable"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/engine/nats"
	"github.com/heraldrt/herald/internal/engine/redis"
	"github.com/heraldrt/herald/internal/hooks/proxy"
	"github.com/heraldrt/herald/internal/hooks/webhook"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/transport/poll"
	"github.com/heraldrt/herald/internal/transport/sse"
	"github.com/heraldrt/herald/internal/transport/webrtc"
	"github.com/heraldrt/herald/internal/transport/websocket"
	"github.com/heraldrt/herald/internal/turn"
	"github.com/heraldrt/herald/web"
)

// Server is one Herald node behind an HTTP listener. Create it with New and
// call Run exactly once: Run releases everything New acquired (the store's
// lock among them), even when its context is already done.
type Server struct {
	cfg    Config
	log    *slog.Logger
	engine engine.Engine
	node   *node.Node
	ws     *websocket.Server
	sse    *sse.Handler
	poll   *poll.Handler
	webrtc *webrtc.Server // nil when webrtc.data_channels is off
	proxy  *proxy.Proxy   // nil when no proxy endpoint is configured
	http   *http.Server
	// metrics is the Prometheus registry behind /metrics, and the node's
	// observer.
	metrics *metrics
	// hooks sends the node's events to webhooks; nil when none are configured.
	hooks *webhook.Webhooks
	// stopAuth ends the verifier's background JWKS refresh.
	stopAuth context.CancelFunc
	// turn is the STUN/TURN server while it runs.
	turn atomic.Pointer[turn.Server]

	// reload is what Reload swaps (reload.go).
	reload reloadState

	ran      atomic.Bool
	draining atomic.Bool
	ready    chan struct{}
	// addr is written once, before ready is closed.
	addr string
}

// New validates cfg and builds the server: it opens the engine (the durable
// store in cfg.DataDir) and wires the node, transports and handlers. It
// listens only in Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.NewLogger(os.Stderr)
	}
	log = withRequestIDs(log)
	for _, name := range unknownEnv(os.Environ()) {
		log.Warn("ignoring unknown environment variable", "name", name)
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if !cfg.Auth.Enabled() && !cfg.AllowAnonymous && !cfg.Dev {
		log.Warn("no client can connect: no token keys are configured (auth) and anonymous clients are not allowed (allow_anonymous)")
	}
	if err := demoSecret(&cfg); err != nil {
		return nil, fmt.Errorf("server: demo token secret: %w", err)
	}
	authCtx, stopAuth := context.WithCancel(context.Background())
	if cfg.Auth.Logger == nil {
		cfg.Auth.Logger = log.With("component", "auth")
	}
	verifier, err := auth.New(authCtx, cfg.Auth)
	if err != nil {
		stopAuth()
		return nil, fmt.Errorf("server: %w", err)
	}
	eng, err := openEngine(&cfg, log)
	if err != nil {
		stopAuth()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, engine: eng, ready: make(chan struct{}), stopAuth: stopAuth}
	if err := s.wire(verifier); err != nil {
		// Nothing has started yet; only the engine holds resources.
		stopAuth()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return nil, errors.Join(err, s.closeHooks(ctx), eng.Close(ctx))
	}
	return s, nil
}

func openEngine(cfg *Config, log *slog.Logger) (engine.Engine, error) {
	switch cfg.Engine {
	case EngineMemory:
		return memory.New(memory.Config{PresenceTTL: cfg.PresenceTTL}), nil
	case EngineRedis:
		e, err := redis.New(redis.Config{URL: cfg.RedisURL, Prefix: cfg.EnginePrefix, PresenceTTL: cfg.PresenceTTL, Logger: log.With("component", "redis")})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		return e, nil
	case EngineNATS:
		e, err := nats.New(nats.Config{URL: cfg.NATSURL, Prefix: cfg.EnginePrefix, PresenceTTL: cfg.PresenceTTL, Replicas: cfg.NATSReplicas, HistoryMaxAge: cfg.natsHistoryMaxAge(), Logger: log.With("component", "nats")})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		return e, nil
	default:
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		e, err := durable.Open(ctx, durable.Config{Dir: cfg.DataDir, PresenceTTL: cfg.PresenceTTL, Logger: log.With("component", "store")})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		return e, nil
	}
}

// wire builds the node, the transports and the routes.
func (s *Server) wire(verifier *auth.Verifier) error {
	cfg := &s.cfg
	s.initReload(verifier)
	tokens := tokenVerifier{&s.reload.verifier}
	adminTokens, verifierWithAdmin, err := s.adminTokens(tokens)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.metrics = newMetrics()
	hooks, err := s.newWebhooks()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.hooks = hooks
	var proxies node.Proxies
	if cfg.Proxy.enabled() {
		px, err := cfg.Proxy.newProxy(s)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		s.proxy, proxies = px, px.Proxies()
	}
	n, err := node.New(node.Config{
		Proxy:                    proxies,
		Observer:                 s.metrics,
		Events:                   quietAdmin(s.events()),
		Engine:                   s.engine,
		Verifier:                 verifierWithAdmin,
		Namespaces:               cfg.namespaces(),
		Dev:                      cfg.Dev,
		AllowAnonymous:           cfg.Dev || cfg.AllowAnonymous,
		MaxConnectionsPerUser:    cfg.MaxConnectionsPerUser,
		CommandRate:              cfg.CommandRate,
		CommandBurst:             cfg.CommandBurst,
		Name:                     cfg.Name,
		Version:                  version(),
		Logger:                   s.log,
		PingInterval:             cfg.PingInterval,
		PongTimeout:              cfg.PongTimeout,
		ConnectTimeout:           cfg.ConnectTimeout,
		MaxQueueBytes:            cfg.MaxQueueBytes,
		MaxChannelsPerSession:    cfg.MaxChannelsPerConnection,
		MaxPublicationSize:       cfg.MaxPublicationSize,
		MaxRecoveredPublications: cfg.MaxRecoveredPublications,
		MaxHistoryLimit:          cfg.MaxHistoryLimit,
		IdempotencyTTL:           cfg.IdempotencyTTL,
		NodeHeartbeat:            cfg.NodeHeartbeat,
		PersonalNamespace:        cfg.PersonalNamespace,
		ICEServers:               s.iceServers,
		DrainSpread:              cfg.drainSpread(),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.node = n
	s.metrics.stats = n.Stats
	s.metrics.history = n.SampleHistory
	s.ws, err = websocket.New(websocket.Config{
		Node:           n,
		Logger:         s.log.With("transport", "websocket"),
		MaxMessageSize: cfg.MaxMessageSize,
		CheckOrigin:    s.checkOrigin,
		WriteTimeout:   cfg.WriteTimeout,
	})
	if err != nil {
		return fmt.Errorf("server: websocket: %w", err)
	}
	// Bodies hold one publication plus its envelope; a broadcast's channel
	// list can add up to api.MaxBroadcastChannels names.
	publishBody := int64(cfg.MaxPublicationSize) + 16<<10
	trusted, _ := parsePrefixes(cfg.TrustedProxies) // Validate checked them
	g := &gate{node: n, origin: s.checkOrigin, cookie: cfg.TokenCookie, trusted: trusted}
	g.setConnectionRate(cfg.ConnectionRate, cfg.ConnectionBurst)
	s.reload.gate = g
	if cfg.Proxy.ConnectURL != "" {
		g.meta = g.proxyMeta(s.proxy)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", g.wrap(route{connection: true, tokenOptional: true}, s.ws))
	s.sse = sse.New(sse.Config{
		Node:         n,
		Logger:       s.log.With("transport", "sse"),
		KeepAlive:    cfg.SSE.KeepAlive,
		Retry:        cfg.SSE.Retry,
		WriteTimeout: cfg.WriteTimeout,
	})
	mux.Handle("/sse", g.wrap(route{connection: true}, s.sse))
	s.poll = poll.New(poll.Config{Node: n, Logger: s.log.With("transport", "poll")})
	mux.Handle("/poll", g.wrap(route{}, s.poll))
	if s.webrtc, err = s.newWebRTC(); err != nil {
		return fmt.Errorf("server: webrtc: %w", err)
	}
	if s.webrtc != nil {
		mux.Handle("/webrtc", g.wrap(route{connection: true, tokenOptional: true}, s.webrtc))
	}
	clientAPI := g.wrap(route{}, api.NewClientHandler(api.ClientConfig{Node: n, MaxBodyBytes: publishBody}))
	for _, p := range api.ClientPaths {
		mux.Handle(p, clientAPI)
	}
	s.reload.api = api.New(api.Config{
		Node:         n,
		Key:          cfg.APIKey,
		Dev:          cfg.Dev,
		Logger:       s.log,
		MaxBodyBytes: publishBody + api.MaxBroadcastChannels*256,
		LogLevel:     cfg.LogLevelVar,
	})
	mux.Handle(api.Prefix, s.reload.api)
	adminIP := func(r *http.Request) string { return clientAddr(r, trusted).String() }
	if err := s.mountAdmin(mux, adminTokens, adminIP, publishBody); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/readyz", s.readyz)
	if cfg.Metrics {
		mux.Handle("/metrics", s.metrics.handler())
	}
	if cfg.Dev && cfg.Auth.HMACSecret != "" {
		mux.Handle(demoTokenPath, demoTokens{secret: []byte(cfg.Auth.HMACSecret)})
	}
	mux.Handle("/", web.Handler())
	s.http = &http.Server{
		Handler: bodyDeadline(withRequestID(s.log, mux), cfg.ReadHeaderTimeout),
		// No WriteTimeout: SSE streams and long polls are long-lived
		// responses; their transports bound each write themselves.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if cfg.TLS.CertFile != "" {
		// Loaded here so that a bad certificate stops the server at startup.
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("server: tls: %w", err)
		}
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// healthz answers 200 while the process serves HTTP, draining or not: it is
// the liveness check, and restarting a node because it drains would only cut
// the drain short. Whether the node takes new clients is readyz's answer.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		_, _ = w.Write([]byte(`{"status":"draining"}` + "\n"))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// pinger is an engine that can tell whether its broker or store answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// readyzTimeout bounds the engine check of one readiness probe.
const readyzTimeout = 2 * time.Second

// readyz answers 200 while the server takes new clients: it is not draining
// and its engine answers (an in-process engine always does). A load balancer
// stops sending new clients to a node that answers 503.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"draining"}` + "\n"))
		return
	}
	if p, ok := s.engine.(pinger); ok {
		ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			s.log.WarnContext(r.Context(), "readiness: engine does not answer", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"engine unreachable"}` + "\n"))
			return
		}
	}
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Ready is closed once the server listens; Addr is set from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, with the port it was given
// when Config.Addr asked for port 0. It is empty until Ready is closed.
func (s *Server) Addr() string {
	select {
	case <-s.ready:
		return s.addr
	default:
		return ""
	}
}

// Run starts the node and the transports, listens on Config.Addr and serves
// until ctx is done, then shuts down gracefully within
// Config.ShutdownTimeout. It returns nil after a clean shutdown, and an
// error when the server could not start, stopped serving on its own, or
// did not shut down cleanly. It must be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("server: Run called twice")
	}
	if ctx.Err() != nil {
		return s.release() // asked to stop before serving anything
	}
	// Listening first means a busy port fails before anything has started.
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return errors.Join(fmt.Errorf("server: listen: %w", err), s.release())
	}
	stopPprof, err := s.startPprof()
	if err != nil {
		_ = ln.Close()
		return errors.Join(err, s.release())
	}
	defer stopPprof()
	// Like the listener, a busy TURN port fails before the rest starts.
	if err := s.startTURN(); err != nil {
		_ = ln.Close()
		return errors.Join(err, s.release())
	}
	if err := s.start(ctx); err != nil {
		_ = ln.Close()
		return errors.Join(err, s.release())
	}
	s.addr = ln.Addr().String()
	close(s.ready)
	s.log.Info("herald listening", "addr", s.addr, "engine", s.cfg.Engine, "dev", s.cfg.Dev, "node", s.node.ID())
	stopDemoTicker := s.startDemoTicker()
	stopAdminStats := s.startAdminStats()

	served := make(chan error, 1)
	go func() {
		if s.http.TLSConfig != nil {
			// ServeTLS offers HTTP/2 by ALPN, so a page's SSE streams share
			// one connection instead of the six HTTP/1.1 allows per host.
			served <- s.http.ServeTLS(ln, "", "")
			return
		}
		served <- s.http.Serve(ln)
	}()
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	case err := <-served:
		served <- err // Serve failed on its own; shutdownServing reports it
	}
	stopDemoTicker()
	stopAdminStats()
	if err := s.shutdownServing(served); err != nil {
		return err
	}
	s.log.Info("shut down cleanly")
	return nil
}

// start starts the node and the WebSocket server, which the routes need
// before the first request. A failed websocket Start leaves nothing to stop.
func (s *Server) start(ctx context.Context) error {
	// Before the node takes clients, so their events are sent from the first.
	if s.hooks != nil {
		s.hooks.Start()
	}
	if err := s.node.Start(ctx); err != nil {
		return fmt.Errorf("server: start node: %w", err)
	}
	if err := s.ws.Start(); err != nil {
		return fmt.Errorf("server: start websocket: %w", err)
	}
	if err := s.sse.Start(); err != nil {
		_ = s.ws.Shutdown(ctx)
		return fmt.Errorf("server: start sse: %w", err)
	}
	if err := s.poll.Start(); err != nil {
		_ = s.sse.Shutdown(ctx)
		_ = s.ws.Shutdown(ctx)
		return fmt.Errorf("server: start poll: %w", err)
	}
	return nil
}

// shutdownServing stops a serving server within the shutdown timeout. The
// HTTP server stops accepting and finishes plain requests while the node
// tells every session to reconnect (close code 4000) and waits for the
// transports to end them: http.Server.Shutdown knows nothing of hijacked
// WebSocket connections, and would wait on SSE streams until they end.
// served yields Serve's result.
func (s *Server) shutdownServing(served <-chan error) error {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var httpErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.http.Shutdown(ctx); err != nil {
			// Whatever is still open after the timeout is cut off.
			httpErr = errors.Join(fmt.Errorf("server: http shutdown: %w", err), s.http.Close())
		}
	})
	err := s.stop(ctx, true)
	wg.Wait()
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(fmt.Errorf("server: serve: %w", serveErr), err)
	}
	return errors.Join(err, httpErr)
}

// release frees what New acquired and start may have started when Run ends
// before serving; the WebSocket server is not running then.
func (s *Server) release() error {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.stop(ctx, false)
}

// stop ends every session and closes the engine (node.Shutdown does both),
// then stops the WebSocket server when it was started.
func (s *Server) stop(ctx context.Context, wsStarted bool) error {
	defer s.stopAuth()
	if s.proxy != nil {
		defer s.proxy.Close()
	}
	var errs []error
	if err := s.stopTURN(); err != nil {
		errs = append(errs, fmt.Errorf("server: turn: %w", err))
	}
	if err := s.node.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("server: node shutdown: %w", err))
	}
	// After the node: its sessions' last events are in the outbox by now.
	if err := s.closeHooks(ctx); err != nil {
		errs = append(errs, fmt.Errorf("server: webhooks: %w", err))
	}
	if wsStarted {
		if err := s.ws.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: websocket shutdown: %w", err))
		}
		if err := s.sse.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: sse shutdown: %w", err))
		}
		if err := s.poll.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: poll shutdown: %w", err))
		}
	}
	if s.webrtc != nil {
		if err := s.webrtc.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: webrtc shutdown: %w", err))
		}
	}
	return errors.Join(errs...)
}

// version is the main module's version from the build, "dev" for a build
// from a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
