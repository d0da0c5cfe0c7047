package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config configures a Client. Only URL is required; every zero value means
// the default documented on its field.
type Config struct {
	// URL is the server's base URL, such as "http://127.0.0.1:8000" or
	// "https://rt.example.com/herald". ws:// and wss:// are accepted too.
	// The transports' paths (/ws, /sse, /poll, /publish, …) are appended.
	URL string
	// Transport chooses WebSocket (the zero value), SSE, LongPoll, ShortPoll
	// or WebRTC.
	Transport Transport
	// Name is sent to the server when connecting over WebSocket, to tell
	// clients apart in its logs.
	Name string
	// Data, when not nil, is a JSON value sent with every WebSocket (and
	// WebRTC) connection, reconnections included. A server with a connect
	// proxy hands it to the application's backend with a client that brings
	// no token, and ConnectedEvent.Data carries the backend's answer; other
	// servers ignore it. SSE and polling do not send it.
	Data json.RawMessage

	// Token authenticates the client: a connection JWT from the
	// application's backend, sent in the WebSocket connect command, and as
	// "Authorization: Bearer" on every request of the other transports
	// (replacing any Authorization in Header). Empty means anonymous,
	// which the server may refuse (ErrUnauthorized).
	Token string
	// GetToken, when set, returns a fresh connection token. It is called
	// for every connection but the first (that one too when Token is
	// empty), when the server asks for a refresh before the token expires,
	// and when a request meets an expired token. An error matching
	// ErrUnauthorized stops the client with that error; other errors are
	// retried with backoff. It runs on the client's own goroutines, never
	// on the handler goroutine, so it may run while a handler does. It
	// must return once ctx ends (with the connection the token is for, or
	// with Close): Close waits for it.
	GetToken func(ctx context.Context) (string, error)

	// MinBackoff and MaxBackoff bound reconnect delays: the n-th attempt
	// waits a random time in [0, min(MaxBackoff, MinBackoff·2ⁿ)]. Defaults
	// DefaultMinBackoff and DefaultMaxBackoff. The count of attempts starts
	// over once a connection has lasted 10 seconds.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// BufferSize bounds the publications, joins and leaves received but not
	// yet handed to handlers (DefaultBufferSize). When handlers fall that
	// far behind, the client drops its connection, waits for the handlers to
	// work through half the buffer and resumes from the last position it
	// buffered: nothing is lost, but ephemeral publications and join/leave
	// events missed meanwhile are not replayed. Polling waits for room
	// instead, as no server connection suffers from the wait.
	BufferSize int

	// PollTimeout is how long one long poll waits on the server (25s; whole
	// seconds, at most 60). PollInterval is the pause between short polls
	// that found nothing (1s).
	PollTimeout  time.Duration
	PollInterval time.Duration
	// IdleTimeout: an SSE stream silent for longer (no event, no keep-alive
	// comment) is taken as dead and reopened (45s, three of the server's
	// default keep-alive intervals). WebSocket connections use the heartbeat
	// the server announces instead.
	IdleTimeout time.Duration

	// HTTPClient makes every HTTP request and the WebSocket handshake. Its
	// Timeout applies to commands only: streams and long polls are bounded
	// by the client itself. Nil means a client of the Client's own, whose
	// idle connections Close releases.
	HTTPClient *http.Client
	// Header is added to every request (a proxy's credentials, say).
	Header http.Header
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	// Handlers of the client's events, called one at a time on the client's
	// handler goroutine (see the package documentation). Any may be nil.
	OnConnecting   func(ConnectingEvent)
	OnConnected    func(ConnectedEvent)
	OnDisconnected func(DisconnectedEvent)
	OnError        func(ErrorEvent)

	// Handlers of server-side subscriptions: the channels the server
	// subscribes a WebSocket client to by itself, those its connection
	// token's "channels" claim names. They have no Subscription; the
	// client keeps their positions and resumes them after every reconnect
	// as it does its own subscriptions', and OnServerSubscribed reports
	// each confirmation as OnSubscribed does. OnServerUnsubscribed reports
	// one the server could not make, or ended, with the reason in Err. A
	// Subscription to one of these channels fails with
	// CodeAlreadySubscribed. Any may be nil.
	OnServerSubscribed   func(SubscribedEvent)
	OnServerPublication  func(Publication)
	OnServerJoin         func(JoinEvent)
	OnServerLeave        func(LeaveEvent)
	OnServerUnsubscribed func(UnsubscribedEvent)
}

// Client is a connection to a Herald server and the subscriptions carried
// on it, kept alive across network failures and server restarts. Create it
// with New; all its methods are safe for concurrent use. A Client that was
// connected holds goroutines until Close.
type Client struct {
	cfg Config
	// base is cfg.URL with an http or https scheme and no trailing slash.
	base string
	// hc makes commands; streamHC makes streams, long polls and the
	// WebSocket handshake, which must not be cut by hc.Timeout.
	hc, streamHC *http.Client
	ownTransport *http.Transport
	log          *slog.Logger
	tr           transport
	queue        *queue

	// mu guards the state below, and every subscription's session state.
	// Lock order: fetching (a semaphore held while GetToken runs, never
	// taken with mu held), mu, then queue.mu (events are queued with mu held, so
	// they are queued in the order things happened). wsConn.mu and
	// Subscription.posMu are leaves: nothing else is taken while they are
	// held. No network I/O and no handler runs with mu held.
	mu sync.Mutex
	// stateCh is closed and replaced on every state change, waking whoever
	// waits on one.
	state   State
	stateCh chan struct{}
	lastErr error // why the client became Disconnected
	subs    map[string]*Subscription
	subSeq  uint64 // numbers Subscribe calls
	// runCancel and runDone control the run loop while one is running.
	runCancel  context.CancelFunc
	runDone    chan struct{}
	dispatched bool // the dispatcher goroutine was started

	// changed wakes SSE and poll sessions when the set of wanted
	// subscriptions changes.
	changed chan struct{}

	// token is the connection token in use, guarded by mu; tokenStale
	// makes its next use fetch a fresh one from GetToken first.
	token      string
	tokenStale bool
	// fetching is held while GetToken runs, so that requests needing a
	// fresh token at once share one call.
	fetching chan struct{}
	// server holds the server-side subscriptions by channel, guarded by mu.
	server map[string]*serverSub

	// jitter draws the reconnect backoff's random delays, and pause waits
	// each one out, reporting false if ctx ends first. Tests replace them
	// to script the delays and see what the reconnect loop waits for.
	jitter func(n int64) int64
	pause  func(ctx context.Context, d time.Duration) bool
}

// transport runs sessions for a Client and carries its commands. Session
// state shared with the Client (subscription states and positions) is
// guarded by Client.mu.
type transport interface {
	// session holds one connection until it breaks (the error says why) or
	// ctx is done, keeping every wanted subscription subscribed on it and
	// calling Client.connected once it is up. The run loop calls it again,
	// after a backoff, unless the error is a permanent *endReason.
	session(ctx context.Context) error
	// subscribe starts subscribing sub, newly wanted, if the transport can
	// do so at once; otherwise the next session picks it up.
	subscribe(sub *Subscription)
	// unsubscribe tells the server sub is no longer wanted, if it knows of
	// it; conn is the session token sub was subscribed on.
	unsubscribe(ctx context.Context, sub *Subscription, conn any) error
	// call runs a command (publish, history, presence, presence_stats) and
	// decodes its result into out.
	call(ctx context.Context, method string, params, out any) error
}

// New returns a disconnected Client for cfg; Connect connects it.
func New(cfg Config) (*Client, error) {
	base, err := baseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Transport < WebSocket || cfg.Transport > WebRTC {
		return nil, fmt.Errorf("client: unknown transport %d", cfg.Transport)
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.BufferSize < 0 || cfg.PollTimeout < 0 || cfg.PollInterval < 0 || cfg.IdleTimeout < 0 {
		return nil, errors.New("client: negative durations and sizes are not allowed")
	}
	if cfg.Data != nil {
		compact, err := compactJSON(cfg.Data)
		if err != nil {
			return nil, err
		}
		cfg.Data = compact
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, errors.New("client: MaxBackoff is below MinBackoff")
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 25 * time.Second
	}
	if cfg.PollTimeout < time.Second || cfg.PollTimeout > 60*time.Second {
		return nil, errors.New("client: PollTimeout must be from 1s to 60s")
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 45 * time.Second
	}
	c := &Client{
		cfg:     cfg,
		base:    base,
		log:     cfg.Logger,
		queue:   newQueue(cfg.BufferSize),
		stateCh: make(chan struct{}),
		subs:    make(map[string]*Subscription),
		changed: make(chan struct{}, 1),
		token:   cfg.Token,
		// Without a token to start with, the first use fetches one.
		tokenStale: cfg.Token == "",
		fetching:   make(chan struct{}, 1),
		server:     make(map[string]*serverSub),
		jitter:     rand.Int64N,
		pause:      sleep,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		c.ownTransport = http.DefaultTransport.(*http.Transport).Clone()
		c.hc = &http.Client{Transport: c.ownTransport}
	}
	stream := *c.hc
	stream.Timeout = 0
	c.streamHC = &stream
	switch cfg.Transport {
	case WebSocket:
		c.tr = &wsTransport{c: c, dial: c.dialWebSocket}
	case WebRTC:
		c.tr = &wsTransport{c: c, dial: c.dialWebRTC}
	case SSE:
		c.tr = &sseTransport{c: c}
	default:
		c.tr = &pollTransport{c: c, long: cfg.Transport == LongPoll}
	}
	return c, nil
}

// baseURL validates u and returns it with an http(s) scheme and no
// trailing slash.
func baseURL(u string) (string, error) {
	if u == "" {
		return "", errors.New("client: Config.URL is required")
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("client: Config.URL: %w", err)
	}
	switch p.Scheme {
	case "http", "https":
	case "ws":
		p.Scheme = "http"
	case "wss":
		p.Scheme = "https"
	default:
		return "", fmt.Errorf("client: Config.URL %q: scheme must be http, https, ws or wss", u)
	}
	if p.Host == "" {
		return "", fmt.Errorf("client: Config.URL %q has no host", u)
	}
	if p.RawQuery != "" || p.Fragment != "" {
		return "", fmt.Errorf("client: Config.URL %q: no query or fragment allowed", u)
	}
	return strings.TrimSuffix(p.String(), "/"), nil
}

// State returns the client's connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Connect starts connecting, and keeps the client connected from then on:
// after a lost connection it reconnects with backoff and resumes every
// subscription. Connect waits for the first connection, and returns nil
// once the client is connected (at once if it already is), the error that
// made the server refuse it for good (the client is then Disconnected), or
// ctx's error. In that last case the client goes on connecting in the
// background; Close stops it.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.state == StateDisconnected && c.runDone != nil {
		// The loop that gave up is on its way out; let it finish first.
		old := c.runDone
		c.runCancel()
		c.mu.Unlock()
		<-old
		c.mu.Lock()
	}
	if c.state == StateDisconnected {
		c.startLocked()
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		state, ch, err := c.state, c.stateCh, c.lastErr
		c.mu.Unlock()
		switch state {
		case StateConnected:
			return nil
		case StateClosed:
			return ErrClosed
		case StateDisconnected:
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startLocked starts the run loop (and, the first time, the handler
// goroutine). Caller holds c.mu; the client is Disconnected.
func (c *Client) startLocked() {
	c.lastErr = nil
	c.setStateLocked(StateConnecting)
	c.emitLocked(nil, func() {
		if c.cfg.OnConnecting != nil {
			c.cfg.OnConnecting(ConnectingEvent{Reason: "connect called"})
		}
	})
	if !c.dispatched {
		c.dispatched = true
		go c.queue.dispatch()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.runCancel, c.runDone = cancel, make(chan struct{})
	go c.run(runCtx, c.runDone)
}

// Close disconnects the client for good: it stops reconnecting, ends every
// subscription without calling its handlers, waits for the client's
// goroutines to exit and releases its idle HTTP connections. A handler
// already running when Close is called may still be finishing when Close
// returns (this is what lets a handler call Close); no handler starts after.
// Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		return nil
	}
	c.setStateLocked(StateClosed)
	cancel, done := c.runCancel, c.runDone
	c.runCancel, c.runDone = nil, nil
	for _, sub := range c.subs {
		sub.gen.Add(1)
		sub.conn = nil
		sub.setStateLocked(SubscriptionUnsubscribed)
	}
	dispatched := c.dispatched
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if running := c.queue.close(); dispatched && !running {
		<-c.queue.done
	}
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

// run keeps sessions going until ctx ends or the server refuses the client
// for good.
func (c *Client) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	b := newBackoff(c.cfg.MinBackoff, c.cfg.MaxBackoff)
	b.randN = c.jitter
	for {
		start := time.Now()
		err := c.tr.session(ctx)
		if ctx.Err() != nil {
			return
		}
		r := asEndReason(err)
		if r.code == closeTokenExpired && c.cfg.GetToken != nil {
			// The next connection brings a fresh token.
			r.permanent = false
		}
		c.mu.Lock()
		wasConnected := c.state == StateConnected
		c.sessionEndedLocked()
		if r.permanent {
			c.lastErr = r.userError()
			c.setStateLocked(StateDisconnected)
			ev := DisconnectedEvent{Code: r.code, Reason: r.reason, Err: c.lastErr}
			c.emitLocked(nil, func() {
				if c.cfg.OnDisconnected != nil {
					c.cfg.OnDisconnected(ev)
				}
			})
			c.mu.Unlock()
			c.log.Warn("herald client disconnected for good", "err", r)
			return
		}
		if wasConnected {
			c.setStateLocked(StateConnecting)
			ev := ConnectingEvent{Code: r.code, Reason: r.reason, Err: r.err}
			c.emitLocked(nil, func() {
				if c.cfg.OnConnecting != nil {
					c.cfg.OnConnecting(ev)
				}
			})
		} else {
			c.emitErrorLocked(r)
		}
		c.mu.Unlock()
		if time.Since(start) >= stableAfter {
			b.reset()
		}
		delay := b.next()
		c.log.Debug("herald client reconnecting", "transport", c.cfg.Transport, "after", delay, "err", r)
		if !c.pause(ctx, delay) {
			return
		}
		if r.slow {
			// Resuming at once would fill the buffer again; let handlers
			// catch up on half of it first.
			if c.queue.waitBelow(ctx, c.cfg.BufferSize/2) != nil {
				return
			}
		}
	}
}

// sleep waits d, reporting false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func asEndReason(err error) *endReason {
	var r *endReason
	if errors.As(err, &r) {
		return r
	}
	if err == nil {
		err = errors.New("connection ended")
	}
	return &endReason{err: err}
}

// connected records that a session is up. ev.Transport is filled in.
func (c *Client) connected(ev ConnectedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connectedLocked(ev)
}

func (c *Client) connectedLocked(ev ConnectedEvent) {
	if c.state != StateConnecting {
		return
	}
	ev.Transport = c.cfg.Transport
	c.setStateLocked(StateConnected)
	c.emitLocked(nil, func() {
		if c.cfg.OnConnected != nil {
			c.cfg.OnConnected(ev)
		}
	})
}

// sessionEndedLocked moves every subscription that was confirmed, or being
// confirmed, on the ended session back to Subscribing, and makes the next
// session fetch fresh tokens. Caller holds c.mu.
func (c *Client) sessionEndedLocked() {
	c.tokenStale = true
	for _, sub := range c.subs {
		sub.conn = nil
		sub.tokenStale = true
		if sub.state == SubscriptionSubscribed {
			sub.setStateLocked(SubscriptionSubscribing)
		}
	}
	for _, ss := range c.server {
		ss.conn = nil
	}
}

// setStateLocked changes the state and wakes its waiters. Caller holds c.mu.
func (c *Client) setStateLocked(s State) {
	if c.state == s {
		return
	}
	c.state = s
	close(c.stateCh)
	c.stateCh = make(chan struct{})
}

// emitLocked queues a control event for the handler goroutine. Caller holds
// c.mu, so events are queued in the order state changed.
func (c *Client) emitLocked(sub *Subscription, fn func()) {
	e := event{sub: sub, fn: fn}
	if sub != nil {
		e.gen = sub.gen.Load()
	}
	c.queue.tryPush(e)
}

func (c *Client) emitErrorLocked(err error) {
	c.emitLocked(nil, func() {
		if c.cfg.OnError != nil {
			c.cfg.OnError(ErrorEvent{Err: err})
		}
	})
}

// notifyChanged wakes SSE and poll sessions after the set of wanted
// subscriptions changed.
func (c *Client) notifyChanged() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitCommandState returns nil once commands may be sent: at once on HTTP
// transports, which need no connection, and once connected on WebSocket
// (wantConnected).
func (c *Client) commandState(ctx context.Context, wantConnected bool) error {
	for {
		c.mu.Lock()
		state, ch := c.state, c.stateCh
		c.mu.Unlock()
		switch {
		case state == StateClosed:
			return ErrClosed
		case state == StateDisconnected:
			return ErrNotConnected
		case state == StateConnected, !wantConnected:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
