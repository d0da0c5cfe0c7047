package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldrt/herald/internal/protocol"
)

// Transport is what a session needs from the connection carrying it.
type Transport interface {
	// Name identifies the transport in logs and metrics ("websocket", "sse").
	Name() string
	// Wake tells the transport that Drain has something for it: queued items
	// or a disconnect. It is called with session locks held, from the fan-out
	// path, so it must not block (a non-blocking channel send, or scheduling
	// a flush).
	Wake()
}

// SessionOptions shape a new session.
type SessionOptions struct {
	// Credentials come from a token the transport found in the HTTP request
	// (Node.Authenticate). A bidirectional session may replace them with its
	// connect command's token; Authenticated says they were checked, so a
	// connect command without a token keeps them.
	Credentials   Credentials
	Authenticated bool
	// Bidirectional sessions (WebSocket) start unconnected, must send a
	// connect command within Config.ConnectTimeout, get a reply to every
	// command and are pinged. Other sessions (SSE) are connected at once,
	// never send commands, learn of their subscriptions through
	// ItemSubscribed items and are kept alive by their transport.
	Bidirectional bool
}

type sessionState uint8

const (
	stateNew sessionState = iota
	stateConnected
	stateFinished
)

// Session is one client's logical connection, the same state machine for
// every transport. A transport feeds it inbound frames (HandleFrame, or
// SubscribeStream for SSE), writes what Drain returns, and calls Finish once
// its connection is gone.
//
// Lock order: Session.mu may be taken while the hub's shard lock is held
// (fan-out), so a session never calls into the hub with mu held.
type Session struct {
	n    *Node
	t    Transport
	id   string
	cred Credentials
	bidi bool
	// preauthenticated: cred came checked from the transport.
	preauthenticated bool

	mu      sync.Mutex
	state   sessionState
	subs    subscriptionSet
	out     outbox
	closing *protocol.Disconnect
	// liveSince is the engine's accept time (Unix ms) of the oldest live
	// publication queued since the last Drain; 0: none. It sits by out, on
	// the cache line every delivery touches anyway.
	liveSince int64
	// pongDue is set when a ping is outstanding; any inbound frame clears it.
	pongDue bool
	// catchingUp counts subscriptions reading a backlog from history, for
	// which each Drain fetches the next page.
	catchingUp int
	// pingQueued: the next Drain starts with a ping. A ping is a flag, not
	// a queued item, so an idle session's heartbeat needs no queue memory.
	pingQueued bool
	// beat is where the heartbeat is; beatAt is the tick of its next
	// deadline on the node's beat wheel (0: none).
	beat   heartbeat
	beatAt int64
	// expiry fires when the token is due for refresh, then when it expires;
	// refreshAsked tells which. Only sessions whose token expires have one.
	expiry       *time.Timer
	refreshAsked bool
	// limiter bounds a connected bidirectional session's commands; rejected
	// counts commands refused in a row.
	limiter  *rate.Limiter
	rejected int32
	// rpcs counts the session's RPCs in flight (maxRPCsPerSession).
	rpcs int32
	// drainedSince is liveSince of the items the last Drain returned, for
	// Wrote.
	drainedSince int64

	// connectedAt is a Unix time in nanoseconds: a time.Time would cost 16
	// bytes more and take the session to the next size class of the
	// allocator, 32 bytes for each connection.
	connectedAt int64
	// log is built on first use with logUser, the user named in log lines
	// (logging.go); atomic because sessions log with and without mu held.
	log     atomic.Pointer[slog.Logger]
	logUser atomic.Pointer[string]

	// admitted and admittedAs (the user the session counts for) are guarded
	// by the session registry's lock, not mu.
	admitted   bool
	admittedAs string
}

// heartbeat is the phase of a bidirectional session's single timer.
type heartbeat uint8

const (
	beatConnecting   heartbeat = iota // timer: connect deadline
	beatIdle                          // timer: next ping
	beatAwaitingPong                  // timer: pong deadline
)

// NewSession registers a session for a transport. It fails with
// ErrShuttingDown once the node is draining, and for a session that is
// connected at once (not bidirectional) with ErrLimitExceeded when its user
// already holds Config.MaxConnectionsPerUser sessions.
func (n *Node) NewSession(t Transport, opts SessionOptions) (*Session, error) {
	if n.draining.Load() {
		return nil, protocol.ErrShuttingDown
	}
	s := &Session{
		n:                n,
		t:                t,
		id:               newID(),
		cred:             opts.Credentials,
		bidi:             opts.Bidirectional,
		preauthenticated: opts.Authenticated,
		out:              outbox{maxBytes: n.cfg.MaxQueueBytes},
		connectedAt:      time.Now().UnixNano(),
	}
	s.setLogUser(opts.Credentials.UserID)
	if s.bidi {
		s.mu.Lock()
		s.rearmLocked(n.cfg.ConnectTimeout)
		s.mu.Unlock()
		n.sessions.add(s)
		return s, nil
	}
	s.state = stateConnected
	n.sessions.add(s)
	if err := n.sessions.admit(s, n.limits().MaxConnectionsPerUser); err != nil {
		n.sessions.remove(s)
		return nil, err
	}
	s.mu.Lock()
	s.armExpiryLocked()
	s.emitSessionLocked(EventConnect, "")
	s.mu.Unlock()
	return s, nil
}

// ID is the session's client id.
func (s *Session) ID() string { return s.id }

func (s *Session) clientInfo() protocol.ClientInfo {
	return protocol.ClientInfo{Client: s.id, User: s.cred.UserID, Info: s.cred.Info}
}

// Drain appends every queued item to dst and returns it, with the disconnect
// the transport must perform after writing them, if any.
func (s *Session) Drain(dst []Item) ([]Item, *protocol.Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pingQueued {
		s.pingQueued = false
		dst = append(dst, Item{Kind: ItemFrame, Push: protocol.PushPing, Frame: protocol.PingFrame})
	}
	dst = s.out.drainTo(dst)
	s.drainedSince, s.liveSince = s.liveSince, 0
	if s.catchingUp > 0 && s.closing == nil {
		s.fetchPagesLocked()
	}
	return dst, s.closing
}

// Closing returns the disconnect the session is waiting to perform, if any,
// without draining the queue: a transport whose socket is backed up uses it
// to close at once instead of after the backlog clears.
func (s *Session) Closing() *protocol.Disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Close asks the transport to end the connection with d. It never blocks, so
// it is safe from the fan-out path; the transport learns of it from Drain.
func (s *Session) Close(d protocol.Disconnect) {
	s.mu.Lock()
	s.closeLocked(d)
	s.mu.Unlock()
}

func (s *Session) closeLocked(d protocol.Disconnect) {
	if s.closing != nil || s.state == stateFinished {
		return
	}
	s.closing = &d
	s.n.observer().Disconnected(s.t.Name(), d)
	if d == protocol.DisconnectSlowConsumer {
		// The client recovers from history after reconnecting; holding its
		// backlog any longer only costs memory.
		if queued := s.out.len(); queued > 0 {
			s.n.observer().Dropped(s.t.Name(), DropSlowConsumer, queued)
		}
		s.out.reset()
	}
	s.t.Wake()
}

// enqueueLocked queues it and wakes the transport when the queue was empty.
// Overflow disconnects the session as a slow consumer: it never blocks the
// caller, which may be fanning out to thousands of sessions.
func (s *Session) enqueueLocked(it Item) {
	if s.closing != nil || s.state == stateFinished {
		return
	}
	wasEmpty := s.out.len() == 0 && !s.pingQueued
	if !s.out.push(it) {
		s.closeLocked(protocol.DisconnectSlowConsumer)
		return
	}
	if wasEmpty {
		s.t.Wake()
	}
}

func (s *Session) enqueueFrame(frame []byte) {
	s.mu.Lock()
	s.enqueueLocked(Item{Kind: ItemFrame, Frame: frame})
	s.mu.Unlock()
}

func (s *Session) reply(id uint32, result any, err error) {
	var de *disconnectError
	if errors.As(err, &de) {
		// A backend proxy asked to close the session; the refusal goes first.
		defer s.Close(de.d)
	}
	if id == 0 {
		return
	}
	r := &protocol.Reply{ID: id}
	if err != nil {
		r.Error = protocol.AsError(err)
	} else {
		r.Result = result
	}
	s.enqueueFrame(protocol.EncodeReply(r))
}

// Finish releases everything the session holds: subscriptions, presence and
// timers. The transport calls it once its connection is closed; later calls
// do nothing.
func (s *Session) Finish() {
	s.mu.Lock()
	if s.state == stateFinished {
		s.mu.Unlock()
		return
	}
	connected, closing, user := s.state == stateConnected, s.closing, s.cred.UserID
	s.state = stateFinished
	subs := s.subs
	for sub := range subs.all() {
		if sub.live {
			s.emitUnsubscribeLocked(sub)
		}
		sub.removed = true
		sub.catchUp = false
	}
	s.catchingUp = 0
	s.subs = subscriptionSet{}
	s.out.reset()
	s.n.beats.cancel(s, s.beatAt)
	s.beatAt = 0
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	// Presence and engine unsubscribes must happen even though the client is
	// gone and its context with it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for sub := range subs.all() {
		s.release(ctx, sub)
	}
	// Before the registry lets go: a node shutting down waits for it, and
	// the event sink closes after that.
	if connected {
		s.emitDisconnect(user, closing)
	}
	s.n.sessions.remove(s)
}

// HandleFrame runs every command in one inbound frame, in order. A frame that
// does not decode closes the session with DisconnectBadRequest; a command
// that fails gets an error reply.
func (s *Session) HandleFrame(ctx context.Context, frame []byte) {
	s.n.observer().Received(s.t.Name())
	cmds, err := protocol.DecodeCommands(frame)
	s.mu.Lock()
	s.pongDue = false
	if err != nil {
		d := protocol.DisconnectBadRequest
		d.Reason = protocol.AsError(err).Message
		s.closeLocked(d)
	}
	s.mu.Unlock()
	for i := range cmds {
		if s.admitCommand(&cmds[i]) {
			s.handleCommand(ctx, &cmds[i])
		}
	}
}

// admitCommand applies the command rate limit. A refused command is answered
// ErrTooManyRequests; a session that sends a whole burst's worth more while
// refused is not backing off and is closed.
func (s *Session) admitCommand(c *protocol.Command) bool {
	if c.Method == protocol.MethodPong {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limiter == nil || s.limiter.Allow() {
		s.rejected = 0
		return true
	}
	s.rejected++
	if int(s.rejected) > s.limiter.Burst() {
		s.closeLocked(protocol.DisconnectTooManyRequests)
		return false
	}
	if c.ID != 0 {
		e := protocol.ErrTooManyRequests.With("more than %g commands per second", float64(s.limiter.Limit()))
		s.enqueueLocked(Item{Kind: ItemFrame, Frame: protocol.EncodeReply(&protocol.Reply{ID: c.ID, Error: e})})
	}
	return false
}

func (s *Session) handleCommand(ctx context.Context, c *protocol.Command) {
	s.mu.Lock()
	state, closing := s.state, s.closing
	s.mu.Unlock()
	if state == stateFinished || closing != nil {
		return
	}
	if c.Method == protocol.MethodPong {
		return
	}
	if state == stateNew && c.Method != protocol.MethodConnect {
		s.reply(c.ID, nil, protocol.ErrNotConnected)
		return
	}
	switch c.Method {
	case protocol.MethodConnect:
		var req protocol.ConnectRequest
		if len(c.Params) > 0 {
			if err := protocol.DecodeParams(c, &req); err != nil {
				s.reply(c.ID, nil, err)
				return
			}
		}
		res, err := s.connect(ctx, req)
		s.reply(c.ID, res, err)
		if err != nil {
			s.Close(connectFailure(err))
			return
		}
		s.subscribeServerSide(ctx, req.Subs)
	case protocol.MethodRefresh:
		var req protocol.RefreshRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		res, err := s.refresh(ctx, req)
		s.reply(c.ID, res, err)
	case protocol.MethodSubscribe:
		var req protocol.SubscribeRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		if err := s.clientSubscribe(ctx, c.ID, req); err != nil {
			s.reply(c.ID, nil, err)
		}
	case protocol.MethodUnsubscribe:
		var req protocol.UnsubscribeRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		s.reply(c.ID, struct{}{}, s.Unsubscribe(ctx, req.Channel))
	case protocol.MethodPublish:
		var req protocol.PublishRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		info := s.clientInfo()
		res, err := s.n.clientPublish(ctx, s.credentials(), &info, req, s.authorizationFor(req.Channel))
		s.reply(c.ID, res, err)
	case protocol.MethodHistory:
		var req protocol.HistoryRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		res, err := s.n.clientHistory(ctx, s.credentials(), req, s.authorizationFor(req.Channel))
		s.reply(c.ID, res, err)
	case protocol.MethodPresence:
		var req protocol.PresenceRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		clients, err := s.n.clientPresence(ctx, s.credentials(), req.Channel, s.authorizationFor(req.Channel))
		s.reply(c.ID, protocol.PresenceResult{Clients: clients}, err)
	case protocol.MethodPresenceStats:
		var req protocol.PresenceRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		res, err := s.n.clientPresenceStats(ctx, s.credentials(), req.Channel, s.authorizationFor(req.Channel))
		s.reply(c.ID, res, err)
	case protocol.MethodSignal:
		var req protocol.SignalRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		s.reply(c.ID, struct{}{}, s.signal(ctx, req))
	case protocol.MethodICEServers:
		res, err := s.iceServers()
		s.reply(c.ID, res, err)
	case protocol.MethodRPC:
		var req protocol.RPCRequest
		if err := protocol.DecodeParams(c, &req); err != nil {
			s.reply(c.ID, nil, err)
			return
		}
		s.rpcAsync(ctx, c.ID, req)
	case protocol.MethodPing:
		s.reply(c.ID, struct{}{}, nil)
	default:
		s.reply(c.ID, nil, protocol.ErrMethodNotFound.With("%q", truncate(c.Method, 32)))
	}
}

// connect authenticates the session with the connect command's token, or
// the credentials its transport brought, and admits it under the per-user
// connection limit.
func (s *Session) connect(ctx context.Context, req protocol.ConnectRequest) (protocol.ConnectResult, error) {
	s.mu.Lock()
	state, cred := s.state, s.cred
	s.mu.Unlock()
	if state != stateNew {
		return protocol.ConnectResult{}, protocol.ErrBadRequest.With("already connected")
	}
	var data json.RawMessage
	switch {
	case req.Token == "" && !s.preauthenticated && s.n.cfg.Proxy.Connect != nil:
		var err error
		if cred, data, err = s.n.proxyConnect(ctx, s, cred.meta, req.Data); err != nil {
			return protocol.ConnectResult{}, err
		}
	case req.Token != "" || !s.preauthenticated:
		var err error
		if cred, err = s.n.Authenticate(ctx, req.Token); err != nil {
			return protocol.ConnectResult{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return protocol.ConnectResult{}, protocol.ErrBadRequest.With("already connected")
	}
	s.cred = cred
	s.setLogUser(cred.UserID)
	if err := s.n.sessions.admit(s, s.n.limits().MaxConnectionsPerUser); err != nil {
		return protocol.ConnectResult{}, err
	}
	s.state = stateConnected
	s.beat = beatIdle
	s.rearmLocked(s.n.cfg.PingInterval)
	lim := s.n.limits()
	s.limiter = rate.NewLimiter(rate.Limit(lim.CommandRate), lim.CommandBurst)
	s.armExpiryLocked()
	s.emitSessionLocked(EventConnect, "")
	return protocol.ConnectResult{
		Client:    s.id,
		User:      s.cred.UserID,
		Version:   s.n.cfg.Version,
		Ping:      int(s.n.cfg.PingInterval / time.Second),
		Pong:      int(s.n.cfg.PongTimeout / time.Second),
		ExpiresIn: expiresIn(s.cred.ExpiresAt),
		Data:      data,
	}, nil
}

// connectFailure is how a session whose connect failed is closed: a bad
// token or a full quota would fail again the same way.
func connectFailure(err error) protocol.Disconnect {
	var de *disconnectError
	switch {
	case errors.As(err, &de):
		return de.d
	case errors.Is(err, protocol.ErrBackendUnavailable):
		return protocol.DisconnectBackendUnavailable
	case protocol.AsError(err).Code >= protocol.AppErrorMin && protocol.AsError(err).Code <= protocol.AppErrorMax:
		// The connect proxy's backend refused the client in its own terms.
		return protocol.DisconnectUnauthorized
	case errors.Is(err, protocol.ErrTokenExpired):
		return protocol.DisconnectTokenExpired
	case errors.Is(err, protocol.ErrLimitExceeded):
		return protocol.DisconnectConnectionLimit
	case errors.Is(err, protocol.ErrUnauthorized):
		return protocol.DisconnectUnauthorized
	default:
		d := protocol.DisconnectBadRequest
		d.Reason = protocol.AsError(err).Message
		return d
	}
}

// credentials returns the session's current credentials; a refresh may
// replace them while a command runs.
func (s *Session) credentials() Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cred
}

// authorizationFor is what the session holds towards channel: whether it is
// subscribed, which private namespaces require for everything but subscribing.
func (s *Session) authorizationFor(channel string) authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs.get(channel)
	return authorization{subscribed: sub != nil && sub.live}
}

// rearmLocked moves the heartbeat's deadline to d from now.
func (s *Session) rearmLocked(d time.Duration) {
	s.n.beats.cancel(s, s.beatAt)
	s.beatAt = s.n.beats.schedule(s, d)
}

// onBeat advances the heartbeat when its deadline at tick at is reached: it
// ends a session that did not connect in time, sends pings (refreshing
// presence, so entries of live clients never expire), and ends a session
// whose pong did not come. It runs on the wheel's goroutine, so it must not
// block.
func (s *Session) onBeat(at int64) {
	s.mu.Lock()
	if s.beatAt != at || s.state == stateFinished || s.closing != nil {
		// Moved or cancelled since the wheel took it.
		s.mu.Unlock()
		return
	}
	s.beatAt = 0
	var present []string
	switch s.beat {
	case beatConnecting:
		if s.state == stateNew {
			d := protocol.DisconnectBadRequest
			d.Reason = "connect timeout"
			s.closeLocked(d)
		}
	case beatIdle:
		s.pongDue = true
		// The ping needs no queue memory, so an empty queue gives its ring
		// back here, a ping interval after it was last used.
		s.releaseIdleQueueLocked()
		if s.closing == nil && !s.pingQueued {
			s.pingQueued = true
			if s.out.len() == 0 {
				s.t.Wake()
			}
		}
		s.beat = beatAwaitingPong
		s.rearmLocked(s.n.cfg.PongTimeout)
		present = s.presentChannelsLocked()
	case beatAwaitingPong:
		if s.pongDue {
			s.closeLocked(protocol.DisconnectNoPong)
			break
		}
		// The ping went out and came back: a session that received nothing
		// else since holds no queue memory until it next has something to send.
		s.releaseIdleQueueLocked()
		s.beat = beatIdle
		s.rearmLocked(s.n.cfg.PingInterval - s.n.cfg.PongTimeout)
	}
	s.mu.Unlock()
	if len(present) > 0 {
		// Engine I/O; the wheel's other deadlines must not wait for it.
		go s.refreshPresence(present)
	}
}

// ReleaseIdleQueue frees the session's queue memory if nothing is queued.
// Transports without pings (SSE) call it from their keep-alive loop; the
// heartbeat does it for the others.
func (s *Session) ReleaseIdleQueue() {
	s.mu.Lock()
	s.releaseIdleQueueLocked()
	s.mu.Unlock()
}

func (s *Session) releaseIdleQueueLocked() {
	if s.out.len() == 0 {
		s.out.reset()
	}
}

// RefreshPresence re-adds the session's presence entries; transports without
// pings (SSE) call it from their keep-alive loop.
func (s *Session) RefreshPresence() {
	s.mu.Lock()
	present := s.presentChannelsLocked()
	s.mu.Unlock()
	s.refreshPresence(present)
}

// presentChannelsLocked lists the channels where this session is in
// presence. Caller must hold s.mu.
func (s *Session) presentChannelsLocked() []string {
	var present []string
	for sub := range s.subs.all() {
		if sub.presence && sub.live {
			present = append(present, sub.channel)
		}
	}
	return present
}

func (s *Session) refreshPresence(channels []string) {
	if len(channels) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.n.cfg.PongTimeout)
	defer cancel()
	info := s.clientInfo()
	for _, ch := range channels {
		if err := s.n.engine.AddPresence(ctx, ch, info); err != nil {
			s.logger().Warn("presence refresh failed", "channel", ch, "err", err)
		}
	}
}
