package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/internal/protocol"
)

// SubscriptionConfig configures a Subscription. Every field may be left zero.
type SubscriptionConfig struct {
	// Since, when set, makes the first Subscribe resume from this position:
	// the publications after it are delivered first, and OnSubscribed
	// reports whether that was possible. Without it the subscription starts
	// from "now".
	Since *StreamPosition

	// Token is a subscription token (a JWT from the application's backend
	// naming the client's user and this channel), which channels of
	// private namespaces require. WebSocket sends it with the subscribe
	// command; SSE and polling as a sub_token parameter of every stream or
	// poll that carries the channel.
	Token string
	// GetToken, when set, returns a fresh subscription token for channel.
	// It is called for every subscribe but the first (that one too when
	// Token is empty): after each reconnect, after Unsubscribe, and when
	// the server refuses a stream or poll as carrying an expired token. An
	// error matching ErrUnauthorized ends the subscription with that error;
	// other errors are retried with the connection, with backoff. It runs
	// as Config.GetToken does, on the client's own goroutines.
	GetToken func(ctx context.Context, channel string) (string, error)

	// Latest says only the newest value of the channel matters (cursors,
	// game state): on the WebRTC transport its publications then come
	// over an unreliable, unordered data channel, without retransmissions
	// or head-of-line blocking, and some are skipped; stale ones arriving
	// late are dropped. Other transports deliver every publication.
	Latest bool

	// Handlers of the subscription's events, called on the client's handler
	// goroutine, in order, never concurrently (see the package
	// documentation). Any may be nil.
	OnSubscribed   func(SubscribedEvent)
	OnUnsubscribed func(UnsubscribedEvent)
	OnPublication  func(Publication)
	// OnJoin and OnLeave receive presence changes in namespaces that send
	// join and leave events, on WebSocket and SSE only: polling carries
	// publications alone.
	OnJoin  func(JoinEvent)
	OnLeave func(LeaveEvent)
	OnError func(SubscriptionErrorEvent)
}

// Subscription is the client's interest in one channel. Create it with
// Client.NewSubscription and start it with Subscribe. Once subscribed, it
// stays subscribed across reconnects: after each one, the client resumes it
// from the last position it delivered and reports the outcome with
// OnSubscribed. Its methods are safe for concurrent use.
type Subscription struct {
	c       *Client
	channel string
	cfg     SubscriptionConfig
	// gen moves on at every Subscribe and Unsubscribe (written with c.mu
	// held, read by the dispatcher without it): queued events of an earlier
	// generation are dropped instead of reaching handlers.
	gen atomic.Uint64

	// Guarded by c.mu.
	state   SubscriptionState
	stateCh chan struct{} // closed and replaced on every state change
	err     error         // why the server ended the subscription
	removed bool
	// wire is the position right after the last event queued for handlers:
	// the point a resubscribe resumes from. hasWire is false until the
	// first confirmation (unless Since was given), and for channels without
	// history.
	wire    StreamPosition
	hasWire bool
	// fresh: the subscription asked for no position, so its first
	// confirmation reports no recovery even when the transport resumed
	// from a position of its own making (SSE).
	fresh bool
	// conn is the session token (a connection, a stream) the subscription
	// is confirmed or being confirmed on; nil when none.
	conn any
	// confirmedOnce: the server accepted it at least once since Subscribe,
	// so a later refusal is not this subscription's doing alone.
	confirmedOnce bool
	// seq orders subscriptions by their last Subscribe call.
	seq uint64
	// noHistory: a probe found the channel keeps no history, so it will
	// never have a position (SSE).
	noHistory bool
	// token is the subscription token to send; tokenStale makes the next
	// subscribe fetch a fresh one from GetToken first.
	token      string
	tokenStale bool

	// pos is the position of the last event handed to handlers, written by
	// the handler goroutine.
	posMu sync.Mutex
	pos   StreamPosition
}

// NewSubscription returns an unsubscribed Subscription to channel. A client
// holds at most one subscription per channel: a second one fails with
// ErrDuplicateSubscription until RemoveSubscription removes the first.
func (c *Client) NewSubscription(channel string, cfg SubscriptionConfig) (*Subscription, error) {
	if !protocol.ValidChannel(channel) {
		return nil, fmt.Errorf("client: invalid channel name %q", channel)
	}
	if cfg.Since != nil && !protocol.ValidEpoch(cfg.Since.Epoch) {
		return nil, fmt.Errorf("client: SubscriptionConfig.Since has an invalid epoch %q", cfg.Since.Epoch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateClosed {
		return nil, ErrClosed
	}
	if c.subs[channel] != nil {
		return nil, ErrDuplicateSubscription
	}
	sub := &Subscription{c: c, channel: channel, cfg: cfg, stateCh: make(chan struct{}), fresh: cfg.Since == nil, token: cfg.Token, tokenStale: cfg.Token == ""}
	if cfg.Since != nil {
		sub.wire, sub.hasWire = *cfg.Since, true
		sub.pos = *cfg.Since
	}
	c.subs[channel] = sub
	return sub, nil
}

// GetSubscription returns the client's subscription to channel, if any.
func (c *Client) GetSubscription(channel string) (*Subscription, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sub, ok := c.subs[channel]
	return sub, ok
}

// RemoveSubscription unsubscribes sub and forgets it, so that a new
// subscription to its channel can be made.
func (c *Client) RemoveSubscription(ctx context.Context, sub *Subscription) error {
	err := sub.Unsubscribe(ctx)
	c.mu.Lock()
	if c.subs[sub.channel] == sub {
		delete(c.subs, sub.channel)
		sub.removed = true
	}
	c.mu.Unlock()
	if err == ErrRemoved || err == ErrClosed {
		return nil
	}
	return err
}

// Channel is the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// State returns the subscription's state.
func (s *Subscription) State() SubscriptionState {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.state
}

// Position returns the stream position of the last event handed to the
// subscription's handlers: the last publication's, or where the stream
// started (SubscribedEvent.Position) if none followed yet. It is set before
// the handler is called, so a handler sees its own event's position. Save it
// to resume later with SubscriptionConfig.Since. The zero value means no
// position yet (or a channel without history).
func (s *Subscription) Position() StreamPosition {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	return s.pos
}

func (s *Subscription) setPos(p StreamPosition) {
	s.posMu.Lock()
	s.pos = p
	s.posMu.Unlock()
}

// wantedSubs lists the subscriptions that are wanted: subscribing or
// subscribed.
func (c *Client) wantedSubs() []*Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Subscription
	for _, s := range c.subs {
		if s.state != SubscriptionUnsubscribed {
			out = append(out, s)
		}
	}
	return out
}

// usableLocked reports why the subscription cannot change state: its client
// is closed or it was removed. Caller must hold s.c.mu.
func (s *Subscription) usableLocked() error {
	switch {
	case s.c.state == StateClosed:
		return ErrClosed
	case s.removed:
		return ErrRemoved
	}
	return nil
}

// Subscribe makes the subscription wanted: it is subscribed now if the
// client is connected, when it connects otherwise, and again after every
// reconnect. Subscribe then waits until the server confirms it (nil), refuses
// it (an *Error; the subscription is Unsubscribed again), or ctx ends
// (ctx's error; the subscription stays wanted). While the client is
// Disconnected it returns nil at once: the subscription is made on Connect.
func (s *Subscription) Subscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if err := s.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	newly := s.state == SubscriptionUnsubscribed
	if newly {
		s.gen.Add(1)
		s.err = nil
		s.conn = nil
		s.confirmedOnce = false
		s.noHistory = false
		c.subSeq++
		s.seq = c.subSeq
		s.setStateLocked(SubscriptionSubscribing)
	}
	c.mu.Unlock()
	if newly {
		c.tr.subscribe(s)
		c.notifyChanged()
	}
	for {
		c.mu.Lock()
		state, err, ch := s.state, s.err, s.stateCh
		cstate, cch, cerr := c.state, c.stateCh, c.lastErr
		c.mu.Unlock()
		switch {
		case state == SubscriptionSubscribed:
			return nil
		case state == SubscriptionUnsubscribed && err != nil:
			return err
		case state == SubscriptionUnsubscribed:
			return ErrUnsubscribed
		case cstate == StateClosed:
			return ErrClosed
		case cstate == StateDisconnected:
			return cerr // nil before the first Connect
		}
		select {
		case <-ch:
		case <-cch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Unsubscribe ends the subscription: OnUnsubscribed is called, and no other
// handler of it starts after Unsubscribe returns. On WebSocket it tells the
// server and waits for its answer, bounded by ctx. The subscription keeps
// its position: a later Subscribe resumes from it.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if err := s.usableLocked(); err != nil || s.state == SubscriptionUnsubscribed {
		c.mu.Unlock()
		return err
	}
	s.gen.Add(1)
	conn := s.conn
	s.conn = nil
	s.tokenStale = true
	s.setStateLocked(SubscriptionUnsubscribed)
	ev := UnsubscribedEvent{Channel: s.channel}
	c.emitLocked(s, func() {
		if s.cfg.OnUnsubscribed != nil {
			s.cfg.OnUnsubscribed(ev)
		}
	})
	c.mu.Unlock()
	c.notifyChanged()
	if conn == nil {
		return nil
	}
	return c.tr.unsubscribe(ctx, s, conn)
}

// setStateLocked changes the state and wakes Subscribe. Caller holds c.mu.
func (s *Subscription) setStateLocked(st SubscriptionState) {
	if s.state == st {
		return
	}
	s.state = st
	close(s.stateCh)
	s.stateCh = make(chan struct{})
}

// wantedLocked reports whether the subscription should be subscribed on
// conn's session and is not yet. Caller holds c.mu.
func (s *Subscription) wantedLocked() bool {
	return s.state == SubscriptionSubscribing && s.conn == nil
}

// confirmLocked records the server's confirmation of the subscription on
// session conn at generation gen, and queues OnSubscribed. It reports false
// when the confirmation is stale: the subscription moved on meanwhile.
// Caller holds c.mu.
func (s *Subscription) confirmLocked(conn any, gen uint64, ev SubscribedEvent) bool {
	if s.gen.Load() != gen || s.conn != conn || s.state == SubscriptionUnsubscribed {
		return false
	}
	ev.Channel = s.channel
	if s.fresh {
		// The user asked for "from now": whatever position the transport
		// used to get there is no recovery of theirs.
		ev.WasRecovering, ev.Recovered = false, false
	}
	s.fresh = false
	s.confirmedOnce = true
	s.wire, s.hasWire = ev.Position, ev.Recoverable && ev.Position.Epoch != ""
	s.setStateLocked(SubscriptionSubscribed)
	s.c.emitLocked(s, func() {
		s.setPos(ev.Position)
		if s.cfg.OnSubscribed != nil {
			s.cfg.OnSubscribed(ev)
		}
	})
	return true
}

// refuseLocked ends the subscription because the server refused it with a
// permanent error. Caller holds c.mu.
func (s *Subscription) refuseLocked(gen uint64, err error) {
	if s.gen.Load() != gen || s.state == SubscriptionUnsubscribed {
		return
	}
	s.gen.Add(1)
	s.conn = nil
	s.err = err
	s.setStateLocked(SubscriptionUnsubscribed)
	ev := UnsubscribedEvent{Channel: s.channel, Err: err}
	s.c.emitLocked(s, func() {
		if s.cfg.OnUnsubscribed != nil {
			s.cfg.OnUnsubscribed(ev)
		}
	})
}

// errorLocked reports a temporary failure of the subscription. Caller holds
// c.mu.
func (s *Subscription) errorLocked(err error) {
	ev := SubscriptionErrorEvent{Channel: s.channel, Err: err}
	s.c.emitLocked(s, func() {
		if s.cfg.OnError != nil {
			s.cfg.OnError(ev)
		}
	})
}

// deliver queues a publication received on session conn. It returns
// errSlowHandler when the queue is full and errGap when the publication does
// not follow the last one (the session must then end, to resume from the
// last position queued). Publications of subscriptions not confirmed on
// conn, and repeats of offsets already queued, are dropped.
func (c *Client) deliver(conn any, pub Publication) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[pub.Channel]
	if s == nil || s.conn != conn || s.state != SubscriptionSubscribed {
		return c.deliverServerLocked(conn, pub)
	}
	ok, err := c.follows(pub, s.wire, s.hasWire)
	if s.cfg.Latest && err == errGap {
		// Skipped values are what a latest-only subscription allows.
		ok, err = true, nil
	}
	if !ok {
		return err
	}
	if pub.Offset > 0 {
		pub.Epoch = s.wire.Epoch
	}
	e := event{sub: s, gen: s.gen.Load(), data: true, fn: func() {
		if pub.Offset > 0 {
			s.setPos(pub.Position())
		}
		if s.cfg.OnPublication != nil {
			s.cfg.OnPublication(pub)
		}
	}}
	if !c.queue.tryPush(e) {
		if s.cfg.Latest {
			return nil // a newer value follows
		}
		return errSlowHandler
	}
	if pub.Offset > 0 && s.hasWire {
		s.wire.Offset = pub.Offset
	}
	return nil
}

// follows reports whether pub, on a stream whose last queued position is
// wire (known when hasWire), is to be queued: it is not when it repeats an
// offset queued already, nor, with errGap, when offsets were skipped.
func (c *Client) follows(pub Publication, wire StreamPosition, hasWire bool) (bool, error) {
	if pub.Offset == 0 || !hasWire {
		return true, nil
	}
	switch {
	case pub.Offset <= wire.Offset:
		return false, nil
	case pub.Offset != wire.Offset+1:
		c.log.Warn("herald client: gap in channel offsets; resuming", "channel", pub.Channel, "have", wire.Offset, "got", pub.Offset)
		return false, errGap
	}
	return true, nil
}

// deliverBlocking is deliver for polling: it waits for room in the queue
// instead of failing, bounded by ctx. The gap check is the caller's.
func (c *Client) deliverBlocking(ctx context.Context, conn any, pub Publication) error {
	for {
		err := c.deliver(conn, pub)
		if err != errSlowHandler {
			return err
		}
		if err := c.queue.waitBelow(ctx, c.cfg.BufferSize-1); err != nil {
			return err
		}
	}
}

// presence queues a join (join true) or leave event received on conn.
func (c *Client) presence(conn any, join bool, channel string, info ClientInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[channel]
	if s == nil || s.conn != conn || s.state != SubscriptionSubscribed {
		return c.presenceServerLocked(conn, join, channel, info)
	}
	fn := func() {
		if s.cfg.OnLeave != nil {
			s.cfg.OnLeave(LeaveEvent{Channel: channel, Info: info})
		}
	}
	if join {
		fn = func() {
			if s.cfg.OnJoin != nil {
				s.cfg.OnJoin(JoinEvent{Channel: channel, Info: info})
			}
		}
	}
	if !c.queue.tryPush(event{sub: s, gen: s.gen.Load(), data: true, fn: fn}) {
		return errSlowHandler
	}
	return nil
}
