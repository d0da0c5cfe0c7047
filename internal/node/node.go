// Package node is Herald's core: channels and their namespaces, the hub that
// fans publications out to local subscribers, the client session state
// machine shared by every transport, subscribe-with-recovery and stateless
// polling. It talks to storage and other nodes only through engine.Engine.
package node

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// Config configures a Node. Zero durations and sizes take the defaults
// documented on each field.
type Config struct {
	Engine engine.Engine
	// Namespaces lists channel options; the one named "" holds channels
	// without a namespace.
	Namespaces []NamespaceOptions
	// Dev opens namespaces that Namespaces does not list to anyone, with
	// history and presence (see DevNamespace).
	Dev bool
	// Verifier checks connection and subscription tokens; nil refuses every
	// token. AllowAnonymous lets clients without a token connect; what they
	// may then do is up to each namespace's "anyone" rules.
	Verifier       TokenVerifier
	AllowAnonymous bool
	// Observer learns of engine calls, fan-outs, writes, disconnects and
	// refusals, for metrics; nil: nothing.
	Observer Observer
	Name     string
	Version  string
	Logger   *slog.Logger

	// PingInterval is how often a bidirectional session is pinged (25s);
	// PongTimeout how long its pong may take (10s). A dead connection is thus
	// closed within PingInterval+PongTimeout.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// ConnectTimeout bounds the time from opening a bidirectional session to
	// its connect command (10s).
	ConnectTimeout time.Duration
	// MaxQueueBytes bounds a session's outbound queue (1 MiB); a session that
	// exceeds it is disconnected as a slow consumer. A resume whose missed
	// publications exceed half of it is served from history page by page as
	// the client reads; it also bounds the bytes of one poll response.
	MaxQueueBytes int
	// MaxChannelsPerSession bounds subscriptions per session and channels per
	// SSE stream or poll (128).
	MaxChannelsPerSession int
	// MaxPublicationSize bounds a publication's data in bytes (64 KiB).
	MaxPublicationSize int
	// MaxRecoveredPublications bounds how many missed publications one
	// subscribe may recover (10,000); beyond it the client is told
	// recovered=false.
	MaxRecoveredPublications int
	// MaxHistoryLimit caps publications per history request and per poll
	// response channel (1,000). A history reply also stops at half of
	// MaxQueueBytes; clients page with a since position.
	MaxHistoryLimit int
	// IdempotencyTTL is how long an idempotency key is remembered (5m).
	IdempotencyTTL time.Duration
	// MaxConnectionsPerUser bounds one authenticated user's sessions on this
	// node; zero means no limit. Anonymous clients are bounded per address
	// by the server instead.
	MaxConnectionsPerUser int
	// CommandRate and CommandBurst bound the commands a bidirectional
	// session may send: a token bucket refilled at CommandRate per second
	// holding CommandBurst (100 and 200). Commands beyond it are answered
	// ErrTooManyRequests; a session that goes on sending regardless is
	// closed with DisconnectTooManyRequests.
	CommandRate  float64
	CommandBurst int
	// RefreshBefore is how long before its token expires a session is asked
	// for a fresh one (30s, or half the token's remaining life if shorter).
	RefreshBefore time.Duration
	// NodeHeartbeat is how often the node announces itself to its peers
	// over the engine's control bus (2s); a peer silent for three heartbeats
	// is considered gone.
	NodeHeartbeat time.Duration
	// PersonalNamespace, when set, subscribes every authenticated
	// connection to its user's personal channel "<namespace>:#<user>"
	// server-side, so SendToUser reaches the user on whichever nodes and
	// connections they hold. The namespace must be configured.
	PersonalNamespace string
	// ICEServers, when set, answers clients asking for STUN and TURN
	// servers; when nil they get none.
	ICEServers ICEServersFunc
	// DrainSpread is the window over which Shutdown tells sessions to
	// reconnect and answers long polls, in a random order, so their clients
	// reach the remaining nodes spread out; zero tells all at once.
	DrainSpread time.Duration
	// Events receives connects, subscribes, publishes and the rest of
	// EventType (webhooks); nil: none are built.
	Events EventSink
	// Proxy asks the application's backend to authenticate and authorize
	// clients and to answer their RPCs; see Proxies.
	Proxy Proxies
	// MaxProxyRequests bounds the connect, subscribe and publish requests
	// to the backend in flight on this node (1,024); one more fails at once
	// with ErrBackendUnavailable. See BlockingProxyCalls.
	MaxProxyRequests int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	def(&c.PingInterval, 25*time.Second)
	def(&c.PongTimeout, 10*time.Second)
	def(&c.ConnectTimeout, 10*time.Second)
	def(&c.IdempotencyTTL, 5*time.Minute)
	defInt(&c.MaxQueueBytes, 1<<20)
	defInt(&c.MaxChannelsPerSession, 128)
	defInt(&c.MaxPublicationSize, 64<<10)
	defInt(&c.MaxRecoveredPublications, 10000)
	defInt(&c.MaxHistoryLimit, 1000)
	defInt(&c.MaxProxyRequests, 1024)
	defInt(&c.CommandBurst, 200)
	def(&c.RefreshBefore, 30*time.Second)
	def(&c.NodeHeartbeat, 2*time.Second)
	if c.CommandRate <= 0 {
		c.CommandRate = 100
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Node is one Herald server's core. Create it with New, call Start, and stop
// it with Shutdown.
type Node struct {
	cfg       Config
	engine    engine.Engine
	ns        liveRef // the namespaces and limits in force, which Reload swaps
	hub       *hub
	id        string
	log       *slog.Logger
	startedAt time.Time

	sessions sessionRegistry
	// beats keeps the heartbeat deadlines of the bidirectional sessions.
	beats *beatWheel
	// published counts publications accepted through Publish and clients.
	published atomic.Uint64
	draining  atomic.Bool
	// done is closed when Shutdown begins, releasing waiting long polls.
	done     chan struct{}
	doneOnce sync.Once
	polls    pollRegistry
	cluster  cluster
	// rpcSlots bounds the RPCs in flight on this node (maxRPCs).
	rpcSlots chan struct{}
	// proxySlots bounds the backend requests commands wait for
	// (Config.MaxProxyRequests); nil without such proxies.
	proxySlots chan struct{}
}

// New validates cfg and returns a node that is not yet receiving from its engine.
func New(cfg Config) (*Node, error) {
	if cfg.Engine == nil {
		return nil, errors.New("node: Config.Engine is required")
	}
	cfg.setDefaults()
	if cfg.PongTimeout >= cfg.PingInterval {
		return nil, fmt.Errorf("node: pong timeout %v must be shorter than ping interval %v", cfg.PongTimeout, cfg.PingInterval)
	}
	// Every engine call the node makes, the hub's included, is timed for
	// the Observer by the wrapper.
	observed := observeEngine(cfg.Engine, cfg.Observer)
	n := &Node{
		cfg:       cfg,
		engine:    observed,
		hub:       newHub(observed, cfg.Logger),
		id:        newID(),
		log:       cfg.Logger,
		startedAt: time.Now(),
		sessions:  sessionRegistry{byID: make(map[string]*Session), users: make(map[string]int), transports: make(map[string]int)},
		done:      make(chan struct{}),
		rpcSlots:  make(chan struct{}, maxRPCs),
	}
	n.beats = newBeatWheel(beatTick(cfg), (*Session).onBeat)
	n.hub.obs = cfg.Observer
	n.cluster.init()
	if cfg.Events != nil {
		n.hub.occupancy = n.occupancy
	}
	if p := cfg.Proxy; p.Connect != nil || p.Subscribe != nil || p.Publish != nil {
		n.proxySlots = make(chan struct{}, cfg.MaxProxyRequests)
	}
	live, err := n.newLiveConfig(liveOf(&cfg))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.ns.p.Store(live)
	return n, nil
}

// Start makes the engine deliver to this node and starts announcing it to
// its peers.
func (n *Node) Start(ctx context.Context) error {
	if err := n.engine.Start(ctx, n.id, engineHandler{n}); err != nil {
		return err
	}
	n.cluster.wg.Add(1)
	go n.heartbeatLoop()
	return nil
}

// ID is the node's unique id in the cluster.
func (n *Node) ID() string { return n.id }

// Draining reports whether Shutdown has begun.
func (n *Node) Draining() bool { return n.draining.Load() }

// Shutdown tells every session to reconnect elsewhere (DisconnectShutdown),
// spread over Config.DrainSpread, waits for their transports to finish them, then closes the engine. When ctx
// ends first, the engine is closed anyway and ctx's error returned.
func (n *Node) Shutdown(ctx context.Context) error {
	n.draining.Store(true)
	n.doneOnce.Do(func() { close(n.done) })
	n.drain(ctx, n.cfg.DrainSpread)
	waitErr := n.sessions.waitEmpty(ctx)
	n.cluster.stop()
	closeCtx := ctx
	if waitErr != nil {
		var cancel context.CancelFunc
		closeCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	return errors.Join(waitErr, n.engine.Close(closeCtx))
}

// engineHandler receives the engine's deliveries; it is a separate type so
// the Handler methods do not become part of Node's API.
type engineHandler struct{ n *Node }

func (h engineHandler) HandlePublication(pub *protocol.Publication, epoch string) {
	h.n.hub.publish(pub, epoch)
}

func (h engineHandler) HandleJoin(channel string, info protocol.ClientInfo) {
	h.presenceEvent(channel, protocol.PushJoin, info)
}

func (h engineHandler) HandleLeave(channel string, info protocol.ClientInfo) {
	h.presenceEvent(channel, protocol.PushLeave, info)
}

func (h engineHandler) presenceEvent(channel, push string, info protocol.ClientInfo) {
	err := h.n.hub.broadcastFrame(channel, push, func() ([]byte, error) {
		return protocol.EncodePush(protocol.JoinLeavePush{Type: push, Channel: channel, Info: info})
	})
	if err != nil {
		h.n.log.Warn("presence event dropped", "channel", channel, "client", info.Client, "err", err)
	}
}

func (h engineHandler) HandleControl(data []byte) { h.n.handleControl(data) }

func (h engineHandler) HandleResync(channel string) { h.n.hub.resync(channel) }

// publishOptions turns a namespace's options into engine options.
func (n *Node) publishOptions(ns NamespaceOptions, ephemeral bool, key string, info *protocol.ClientInfo, tags map[string]string) engine.PublishOptions {
	o := engine.PublishOptions{
		IdempotencyKey: key,
		IdempotencyTTL: n.cfg.IdempotencyTTL,
		Info:           info,
		Tags:           tags,
	}
	if !ephemeral {
		o.HistorySize, o.HistoryTTL = ns.HistorySize, ns.HistoryTTL
	}
	return o
}

// Publish publishes on behalf of the server API: no permission checks, but
// the same validation as any client publish.
func (n *Node) Publish(ctx context.Context, req protocol.PublishRequest) (protocol.PublishResult, error) {
	ns, err := n.ns.resolve(req.Channel)
	if err != nil {
		return protocol.PublishResult{}, err
	}
	return n.publish(ctx, ns, req, nil)
}

// ClientPublish publishes on behalf of a client, checking the namespace's
// publish permission. info identifies the client in the publication.
func (n *Node) ClientPublish(ctx context.Context, cred Credentials, info *protocol.ClientInfo, req protocol.PublishRequest) (protocol.PublishResult, error) {
	return n.clientPublish(ctx, cred, info, req, authorization{})
}

func (n *Node) clientPublish(ctx context.Context, cred Credentials, info *protocol.ClientInfo, req protocol.PublishRequest, az authorization) (protocol.PublishResult, error) {
	ns, err := n.ns.resolve(req.Channel)
	if err != nil {
		return protocol.PublishResult{}, err
	}
	if err := n.authorizePublish(ctx, cred, info, ns, &req, az); err != nil {
		return protocol.PublishResult{}, err
	}
	return n.publish(ctx, ns, req, info)
}

// publish goes on while the node drains: sessions not yet told to reconnect
// are still served, over a drain spread of seconds. Once the engine closes,
// its ErrClosed answers ErrShuttingDown (engineError).
func (n *Node) publish(ctx context.Context, ns NamespaceOptions, req protocol.PublishRequest, info *protocol.ClientInfo) (protocol.PublishResult, error) {
	if most := n.limits().MaxPublicationSize; len(req.Data) > most {
		return protocol.PublishResult{}, protocol.ErrMessageTooLarge.With("data is %d bytes, limit %d", len(req.Data), most)
	}
	data, err := protocol.NormalizeData(req.Data)
	if err != nil {
		return protocol.PublishResult{}, err
	}
	if len(req.IdempotencyKey) > 128 {
		return protocol.PublishResult{}, protocol.ErrBadRequest.With("idempotency_key longer than 128 bytes")
	}
	if err := checkTags(req.Tags); err != nil {
		return protocol.PublishResult{}, err
	}
	pos, err := n.engine.Publish(ctx, req.Channel, data, n.publishOptions(ns, req.Ephemeral, req.IdempotencyKey, info, req.Tags))
	if err != nil {
		return protocol.PublishResult{}, n.engineError("publish", err)
	}
	n.published.Add(1)
	res := protocol.PublishResult{Offset: pos.Offset, Epoch: pos.Epoch}
	n.emitPublish(req.Channel, data, res, info, req.Tags)
	return res, nil
}

// Tag limits: tags travel with every copy of a publication, in history and
// in every push, so they are kept small.
const (
	MaxTags     = 32
	MaxTagBytes = 4096
)

func checkTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return protocol.ErrLimitExceeded.With("%d tags, at most %d", len(tags), MaxTags)
	}
	size := 0
	for k, v := range tags {
		size += len(k) + len(v)
	}
	if size > MaxTagBytes {
		return protocol.ErrLimitExceeded.With("tags take %d bytes, at most %d", size, MaxTagBytes)
	}
	return nil
}

// History reads a channel's history on behalf of the server API.
func (n *Node) History(ctx context.Context, req protocol.HistoryRequest) (protocol.HistoryResult, error) {
	ns, err := n.ns.resolve(req.Channel)
	if err != nil {
		return protocol.HistoryResult{}, err
	}
	return n.history(ctx, ns, req)
}

// ClientHistory reads history on behalf of a client, checking permissions.
func (n *Node) ClientHistory(ctx context.Context, cred Credentials, req protocol.HistoryRequest) (protocol.HistoryResult, error) {
	return n.clientHistory(ctx, cred, req, authorization{})
}

func (n *Node) clientHistory(ctx context.Context, cred Credentials, req protocol.HistoryRequest, az authorization) (protocol.HistoryResult, error) {
	ns, err := n.ns.resolve(req.Channel)
	if err != nil {
		return protocol.HistoryResult{}, err
	}
	if err := n.authorize(cred, ns, req.Channel, actHistory, az); err != nil {
		return protocol.HistoryResult{}, err
	}
	return n.history(ctx, ns, req)
}

func (n *Node) history(ctx context.Context, ns NamespaceOptions, req protocol.HistoryRequest) (protocol.HistoryResult, error) {
	if ns.HistorySize == 0 {
		return protocol.HistoryResult{}, protocol.ErrNotAvailable.With("namespace %q keeps no history", ns.Name)
	}
	if req.Limit < 0 {
		return protocol.HistoryResult{}, protocol.ErrBadRequest.With("negative limit")
	}
	if req.Since != nil && !protocol.ValidEpoch(req.Since.Epoch) {
		return protocol.HistoryResult{}, protocol.ErrInvalidPosition.With("bad epoch")
	}
	most := n.limits().MaxHistoryLimit
	if req.Limit > most {
		return protocol.HistoryResult{}, protocol.ErrLimitExceeded.With("limit %d exceeds the maximum of %d publications per request", req.Limit, most)
	}
	limit := req.Limit
	if limit == 0 {
		limit = most
	}
	res, err := n.engine.History(ctx, req.Channel, engine.HistoryQuery{Since: req.Since, Limit: limit, Reverse: req.Reverse})
	if err != nil {
		return protocol.HistoryResult{}, n.engineError("history", err)
	}
	if req.Since != nil && req.Since.Epoch != res.Position.Epoch {
		return protocol.HistoryResult{}, protocol.ErrInvalidPosition.With("epoch %q is not the channel's current epoch %q", req.Since.Epoch, res.Position.Epoch)
	}
	// Bound the reply in bytes too: it travels through a session's queue. A
	// reply always holds at least one publication; callers page with Since.
	out := protocol.HistoryResult{Publications: make([]protocol.Publication, 0, len(res.Publications)), Epoch: res.Position.Epoch, Offset: res.Position.Offset}
	budget := n.cfg.MaxQueueBytes / 2
	for _, p := range res.Publications {
		if budget <= 0 && len(out.Publications) > 0 {
			break
		}
		budget -= len(p.Data) + len(p.Channel) + 64
		out.Publications = append(out.Publications, *p)
	}
	return out, nil
}

// Presence lists a channel's clients on behalf of the server API.
func (n *Node) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	ns, err := n.ns.resolve(channel)
	if err != nil {
		return nil, err
	}
	if !ns.Presence {
		return nil, protocol.ErrNotAvailable.With("namespace %q keeps no presence", ns.Name)
	}
	p, err := n.engine.Presence(ctx, channel)
	if err != nil {
		return nil, n.engineError("presence", err)
	}
	return p, nil
}

// PresenceStats counts a channel's clients and users on behalf of the server API.
func (n *Node) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	ns, err := n.ns.resolve(channel)
	if err != nil {
		return engine.PresenceStats{}, err
	}
	if !ns.Presence {
		return engine.PresenceStats{}, protocol.ErrNotAvailable.With("namespace %q keeps no presence", ns.Name)
	}
	st, err := n.engine.PresenceStats(ctx, channel)
	if err != nil {
		return engine.PresenceStats{}, n.engineError("presence stats", err)
	}
	return st, nil
}

// mayReadPresence checks the namespace's presence permission for a client.
func (n *Node) mayReadPresence(cred Credentials, channel string, az authorization) error {
	ns, err := n.ns.resolve(channel)
	if err != nil {
		return err
	}
	return n.authorize(cred, ns, channel, actPresence, az)
}

// ClientPresence lists a channel's clients on behalf of a client, checking
// the namespace's presence permission.
func (n *Node) ClientPresence(ctx context.Context, cred Credentials, channel string) (map[string]protocol.ClientInfo, error) {
	return n.clientPresence(ctx, cred, channel, authorization{})
}

func (n *Node) clientPresence(ctx context.Context, cred Credentials, channel string, az authorization) (map[string]protocol.ClientInfo, error) {
	if err := n.mayReadPresence(cred, channel, az); err != nil {
		return nil, err
	}
	return n.Presence(ctx, channel)
}

// ClientPresenceStats counts a channel's clients and users on behalf of a
// client, checking the namespace's presence permission.
func (n *Node) ClientPresenceStats(ctx context.Context, cred Credentials, channel string) (protocol.PresenceStatsResult, error) {
	return n.clientPresenceStats(ctx, cred, channel, authorization{})
}

func (n *Node) clientPresenceStats(ctx context.Context, cred Credentials, channel string, az authorization) (protocol.PresenceStatsResult, error) {
	if err := n.mayReadPresence(cred, channel, az); err != nil {
		return protocol.PresenceStatsResult{}, err
	}
	st, err := n.PresenceStats(ctx, channel)
	return protocol.PresenceStatsResult{NumClients: st.NumClients, NumUsers: st.NumUsers}, err
}

// Channels returns this node's channels with local subscribers and their
// subscriber counts.
func (n *Node) Channels() map[string]int {
	out := make(map[string]int)
	n.hub.channelCounts(func(ch string, subs int) { out[ch] = subs })
	return out
}

// Info describes a node for the server API's info call.
type Info struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	NumClients  int    `json:"num_clients"`
	NumUsers    int    `json:"num_users"`
	NumChannels int    `json:"num_channels"`
	Uptime      int64  `json:"uptime_seconds"`
}

// Info reports this node's identity and counts.
func (n *Node) Info() Info {
	clients, users := n.sessions.counts()
	return Info{
		ID:          n.id,
		Name:        n.cfg.Name,
		Version:     n.cfg.Version,
		NumClients:  clients,
		NumUsers:    users,
		NumChannels: n.hub.numChannels(),
		Uptime:      int64(time.Since(n.startedAt).Seconds()),
	}
}

// engineError logs an engine failure and turns it into the error clients see:
// internal details stay in the log.
func (n *Node) engineError(op string, err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return protocol.ErrNotAvailable.With("%s: %v", op, err)
	}
	if errors.Is(err, engine.ErrClosed) {
		return protocol.ErrShuttingDown
	}
	n.log.Error("engine call failed", "op", op, "err", err)
	return protocol.ErrInternal
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random 26-character id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// sessionRegistry tracks live sessions for counts and shutdown.
type sessionRegistry struct {
	mu    sync.Mutex
	byID  map[string]*Session
	users map[string]int
	// transports counts sessions by transport name.
	transports map[string]int
	// emptied is closed and replaced when the registry becomes empty.
	emptied chan struct{}
}

func (r *sessionRegistry) add(s *Session) {
	r.mu.Lock()
	r.byID[s.id] = s
	r.transports[s.t.Name()]++
	r.mu.Unlock()
}

// byTransport copies the session counts by transport name.
func (r *sessionRegistry) byTransport() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.transports)
}

// admit counts s as one of its user's sessions, refusing it when the user
// already holds max (zero: no limit). Anonymous sessions are never refused.
// Caller may hold s.mu: the registry never takes a session's lock.
func (r *sessionRegistry) admit(s *Session, max int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	user := s.cred.UserID
	// Reserved sessions are the server's own: clients sharing their user
	// id must not crowd them out.
	if user != "" && max > 0 && !s.cred.Reserved && r.users[user] >= max {
		return protocol.ErrLimitExceeded.With("user already holds %d connections, the limit on this node", max)
	}
	r.users[user]++
	s.admitted, s.admittedAs = true, user
	return nil
}

func (r *sessionRegistry) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[s.id]; !ok {
		return
	}
	delete(r.byID, s.id)
	if r.transports[s.t.Name()]--; r.transports[s.t.Name()] == 0 {
		delete(r.transports, s.t.Name())
	}
	if s.admitted {
		s.admitted = false
		if r.users[s.admittedAs]--; r.users[s.admittedAs] == 0 {
			delete(r.users, s.admittedAs)
		}
	}
	if len(r.byID) == 0 && r.emptied != nil {
		close(r.emptied)
		r.emptied = nil
	}
}

func (r *sessionRegistry) get(id string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *sessionRegistry) all() []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Session, 0, len(r.byID))
	for _, s := range r.byID {
		out = append(out, s)
	}
	return out
}

// counts returns the number of sessions and of distinct users among them;
// anonymous sessions count as no user.
func (r *sessionRegistry) counts() (clients, users int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	users = len(r.users)
	if _, anon := r.users[""]; anon {
		users--
	}
	return len(r.byID), users
}

func (r *sessionRegistry) waitEmpty(ctx context.Context) error {
	r.mu.Lock()
	if len(r.byID) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.emptied == nil {
		r.emptied = make(chan struct{})
	}
	ch := r.emptied
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node: sessions still open: %w", ctx.Err())
	}
}
