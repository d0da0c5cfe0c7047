package node

import (
	"context"
	"errors"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// subscription is one session's subscription to one channel and the hub's
// subscriber for it. Its fields are guarded by the session's mutex.
//
// A subscription starts buffering live publications (live false) while its
// history is read, then replays history and the buffer, dropping offsets
// already delivered. Once live, it accepts only the next offset: anything
// else means the stream broke, and the session is told to resume. A backlog
// too big to queue at once is served page by page first (catchup.go).
type subscription struct {
	s       *Session
	channel string
	// presence and joinLeave are the namespace's options, all a
	// subscription needs of them once it exists.
	presence, joinLeave bool
	// latest: the client asked for protocol.DeliveryLatest.
	latest bool
	live   bool
	// removed is set when the subscription leaves its session, so the
	// fan-out path can skip it without a map lookup.
	removed bool
	epoch   string
	offset  uint64
	buffer  []bufferedPublication
	// catchUp: the subscription is reading its backlog from history;
	// fetching: a page read is in flight; liveTop: the newest offset
	// delivered live meanwhile.
	catchUp, fetching bool
	liveTop           uint64
}

type bufferedPublication struct {
	pub   *protocol.Publication
	epoch string
	frame []byte
}

// SubscribedPush is the frame of an ItemSubscribed item: what SSE sends as
// its "subscribed" event.
type SubscribedPush struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	protocol.SubscribeResult
}

func (sub *subscription) deliverPublication(pub *protocol.Publication, epoch string, frame []byte) {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.removed {
		return
	}
	if !sub.live {
		if len(sub.buffer) >= s.n.limits().MaxRecoveredPublications {
			s.closeLocked(protocol.DisconnectSlowConsumer)
			return
		}
		sub.buffer = append(sub.buffer, bufferedPublication{pub, epoch, frame})
		return
	}
	if sub.catchUp {
		sub.noteLiveLocked(pub, epoch)
		return
	}
	queued := s.out.len()
	sub.acceptLocked(pub, epoch, frame)
	if s.liveSince == 0 && s.out.len() > queued {
		s.liveSince = pub.Time
	}
}

func (sub *subscription) deliverFrame(push string, frame []byte) {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sub.removed && sub.live {
		s.enqueueLocked(Item{Kind: ItemFrame, Push: push, Channel: sub.channel, Frame: frame})
	}
}

// checkPosition disconnects the session when the channel moved past what it
// delivered: a lost delivery would otherwise stay unnoticed until the next
// publication, which on a quiet channel may never come. The client resumes
// from history when it reconnects. A publication stored but still on its way
// also looks like a gap; the cost of that rare race is one needless resume.
func (sub *subscription) checkPosition(top protocol.StreamPosition) {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.removed || !sub.live || sub.catchUp || top.Offset == 0 {
		return
	}
	if top.Epoch != sub.epoch || top.Offset > sub.offset {
		s.logger().Info("resync found a gap", "channel", sub.channel, "have", sub.offset, "top", top.Offset)
		s.closeLocked(protocol.DisconnectInsufficient)
	}
}

// acceptLocked enqueues pub if it is the next in the stream.
func (sub *subscription) acceptLocked(pub *protocol.Publication, epoch string, frame []byte) {
	s := sub.s
	if pub.Offset == 0 {
		// Ephemeral, or a namespace without history: no position to keep.
		s.enqueueLocked(Item{Kind: ItemPublication, Push: protocol.PushPublication, Channel: sub.channel, Epoch: sub.epoch, Offset: sub.offset, Frame: frame, Latest: sub.latest})
		return
	}
	if epoch != sub.epoch {
		s.closeLocked(protocol.DisconnectInsufficient)
		return
	}
	if pub.Offset <= sub.offset {
		return
	}
	if pub.Offset != sub.offset+1 {
		s.logger().Warn("gap in channel stream", "channel", sub.channel, "have", sub.offset, "got", pub.Offset)
		s.closeLocked(protocol.DisconnectInsufficient)
		return
	}
	sub.offset = pub.Offset
	s.enqueueLocked(Item{Kind: ItemPublication, Push: protocol.PushPublication, Channel: sub.channel, Epoch: epoch, Offset: pub.Offset, Frame: frame, Latest: sub.latest})
}

// clientSubscribe subscribes a bidirectional session at its request,
// verifying the subscription token it may bring.
func (s *Session) clientSubscribe(ctx context.Context, replyID uint32, req protocol.SubscribeRequest) error {
	var grant *SubscriptionGrant
	if req.Token != "" {
		grants, err := s.n.VerifySubscriptionTokens(ctx, []string{req.Token}, []string{req.Channel})
		if err != nil {
			return err
		}
		g := grants[req.Channel]
		grant = &g
	}
	return s.subscribe(ctx, subscribeOrigin{replyID: replyID, grant: grant}, req)
}

// subscribeServerSide makes the subscriptions the session's token asked for,
// resuming those positions names. The server decided them, so the client is
// told of each with a PushSubscribed, or of a failure with an unsubscribe push.
func (s *Session) subscribeServerSide(ctx context.Context, positions map[string]protocol.StreamPosition) {
	for _, ch := range s.credentials().Channels {
		req := protocol.SubscribeRequest{Channel: ch}
		if p, ok := positions[ch]; ok {
			req.Recover, req.Epoch, req.Offset = true, p.Epoch, p.Offset
		}
		err := s.subscribe(ctx, subscribeOrigin{serverSide: true}, req)
		if err == nil || errors.Is(err, protocol.ErrAlreadySubscribed) {
			continue
		}
		e := protocol.AsError(err)
		frame, _ := protocol.EncodePush(protocol.UnsubscribePush{Type: protocol.PushUnsubscribe, Channel: ch, Code: e.Code, Reason: e.Message})
		s.enqueueFrame(frame)
	}
}

// subscribeOrigin says who asked for a subscription and with what proof.
type subscribeOrigin struct {
	// replyID is the subscribe command's id; zero for subscriptions the
	// client did not ask for with a command.
	replyID uint32
	// serverSide subscriptions come from the session's token and need no
	// further authorization.
	serverSide bool
	grant      *SubscriptionGrant
}

// subscribe runs the subscribe-with-recovery sequence. On success the reply
// (a bidirectional client's command) or ItemSubscribed item is queued by
// subscribe itself, ahead of the recovered publications, so they reach the
// client in that order; on failure the error is returned and nothing is queued.
func (s *Session) subscribe(ctx context.Context, origin subscribeOrigin, req protocol.SubscribeRequest) error {
	ns, err := s.n.ns.resolve(req.Channel)
	if err != nil {
		return err
	}
	if !origin.serverSide {
		if err := s.n.authorizeSubscribe(ctx, s, s.credentials(), ns, req.Channel, authorization{grant: origin.grant}); err != nil {
			return err
		}
	}
	if req.Delivery != protocol.DeliveryReliable && req.Delivery != protocol.DeliveryLatest {
		return protocol.ErrBadRequest.With("unknown delivery %q", req.Delivery)
	}
	var since *protocol.StreamPosition
	if req.Recover {
		if !protocol.ValidEpoch(req.Epoch) {
			return protocol.ErrInvalidPosition.With("bad epoch")
		}
		since = &protocol.StreamPosition{Epoch: req.Epoch, Offset: req.Offset}
	}
	sub := &subscription{s: s, channel: req.Channel, presence: ns.Presence, joinLeave: ns.JoinLeave, latest: req.Delivery == protocol.DeliveryLatest}
	maxSubs := s.n.limits().MaxChannelsPerSession
	s.mu.Lock()
	switch {
	case s.state == stateFinished || s.closing != nil:
		s.mu.Unlock()
		return protocol.ErrNotAvailable.With("session closing")
	case s.subs.get(req.Channel) != nil:
		s.mu.Unlock()
		return protocol.ErrAlreadySubscribed.With("%q", req.Channel)
	case s.subs.len() >= maxSubs:
		s.mu.Unlock()
		return protocol.ErrLimitExceeded.With("at most %d subscriptions per connection", maxSubs)
	}
	s.subs.put(sub)
	s.mu.Unlock()

	// Subscribe the node first so every publication after this point is
	// buffered, then read history: together they leave no gap.
	if err := s.n.hub.add(ctx, req.Channel, sub); err != nil {
		s.dropSubscription(sub)
		return s.n.engineError("subscribe", err)
	}
	limit := 0
	if since != nil && ns.HistorySize > 0 {
		limit = min(ns.HistorySize, s.n.limits().MaxRecoveredPublications, catchUpPage)
	}
	hist, err := s.n.engine.History(ctx, req.Channel, engine.HistoryQuery{Since: since, Limit: limit})
	if err != nil {
		s.dropSubscription(sub)
		_ = s.n.hub.remove(context.WithoutCancel(ctx), req.Channel, sub)
		return s.n.engineError("subscribe history", err)
	}
	pubs, recovered := recoverable(since, hist, limit, s.n.limits().MaxRecoveredPublications)
	res := protocol.SubscribeResult{
		Epoch:         hist.Position.Epoch,
		Offset:        hist.Position.Offset,
		Recoverable:   ns.HistorySize > 0,
		WasRecovering: since != nil,
		Recovered:     recovered,
	}
	// Where the client's stream continues from: its own position when
	// recovered, otherwise now.
	start := hist.Position.Offset
	if recovered {
		start = since.Offset
	}

	// Presence goes in before the reply so that a client which saw its
	// subscribe acknowledged also finds itself in presence.
	if ns.Presence {
		if err := s.n.engine.AddPresence(ctx, req.Channel, s.clientInfo()); err != nil {
			s.logger().Warn("presence add failed", "channel", req.Channel, "err", err)
		}
	}
	s.mu.Lock()
	if s.subs.get(req.Channel) != sub {
		// Finished or unsubscribed while we read history; their release
		// may have run before the presence add above, so undo it here.
		s.mu.Unlock()
		_ = s.n.hub.remove(context.WithoutCancel(ctx), req.Channel, sub)
		if ns.Presence {
			_ = s.n.engine.RemovePresence(context.WithoutCancel(ctx), req.Channel, s.id)
		}
		return protocol.ErrNotAvailable.With("session closing")
	}
	if s.bidi && !origin.serverSide {
		s.enqueueLocked(Item{Kind: ItemFrame, Frame: protocol.EncodeReply(&protocol.Reply{ID: origin.replyID, Result: res})})
	} else {
		// Scalars only: this push always encodes.
		frame, _ := protocol.EncodePush(SubscribedPush{Type: protocol.PushSubscribed, Channel: req.Channel, SubscribeResult: res})
		s.enqueueLocked(Item{Kind: ItemSubscribed, Push: protocol.PushSubscribed, Channel: req.Channel, Epoch: res.Epoch, Offset: start, Frame: frame})
	}
	sub.epoch, sub.offset, sub.live = res.Epoch, start, true
	s.emitSessionLocked(EventSubscribe, req.Channel)
	if ns.Presence {
		s.emitSessionLocked(EventJoin, req.Channel)
	}
	if len(pubs) > 0 {
		sub.fillLocked(pubs, hist.Position.Offset)
	}
	for _, b := range sub.buffer {
		if sub.catchUp {
			sub.noteLiveLocked(b.pub, b.epoch)
		} else {
			sub.acceptLocked(b.pub, b.epoch, b.frame)
		}
	}
	sub.buffer = nil
	s.mu.Unlock()

	if ns.Presence && ns.JoinLeave {
		if err := s.n.engine.PublishJoin(ctx, req.Channel, s.clientInfo()); err != nil {
			s.logger().Warn("join event failed", "channel", req.Channel, "err", err)
		}
	}
	return nil
}

// recoverable decides whether hist, a read of at most limit publications
// after since, starts the rest of the stream: same epoch, the publication
// right after since still in history, and at most maxMissed behind the
// channel's newest offset. What the first page leaves is caught up later.
func recoverable(since *protocol.StreamPosition, hist engine.HistoryResult, limit, maxMissed int) ([]*protocol.Publication, bool) {
	if since == nil {
		return nil, false
	}
	top := hist.Position
	switch {
	case since.Epoch != top.Epoch, since.Offset > top.Offset:
		return nil, false
	case since.Offset == top.Offset:
		return nil, true
	case top.Offset-since.Offset > uint64(maxMissed):
		// Too much to replay: the client is better off reloading its state.
		return nil, false
	}
	pubs := hist.Publications
	switch {
	case len(pubs) == 0, pubs[0].Offset != since.Offset+1:
		return nil, false
	case len(pubs) < limit && pubs[len(pubs)-1].Offset != top.Offset:
		// A short read that stops before the newest offset: history has a
		// hole, not a next page.
		return nil, false
	}
	return pubs, true
}

func (s *Session) dropSubscription(sub *subscription) {
	s.mu.Lock()
	if s.subs.get(sub.channel) == sub {
		s.subs.remove(sub.channel)
		sub.removed = true
		sub.endCatchUpLocked()
	}
	s.mu.Unlock()
}

// Unsubscribe ends the session's subscription to channel.
func (s *Session) Unsubscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	sub := s.subs.get(channel)
	if sub != nil {
		if sub.live {
			s.emitUnsubscribeLocked(sub)
		}
		s.subs.remove(channel)
		sub.removed = true
		sub.endCatchUpLocked()
	}
	s.mu.Unlock()
	if sub == nil {
		return protocol.ErrNotSubscribed.With("%q", truncate(channel, 64))
	}
	s.release(context.WithoutCancel(ctx), sub)
	return nil
}

// release detaches sub from the hub and from presence.
func (s *Session) release(ctx context.Context, sub *subscription) {
	if err := s.n.hub.remove(ctx, sub.channel, sub); err != nil {
		s.logger().Warn("engine unsubscribe failed", "channel", sub.channel, "err", err)
	}
	if !sub.presence {
		return
	}
	if err := s.n.engine.RemovePresence(ctx, sub.channel, s.id); err != nil {
		s.logger().Warn("presence remove failed", "channel", sub.channel, "err", err)
	}
	if sub.joinLeave {
		if err := s.n.engine.PublishLeave(ctx, sub.channel, s.clientInfo()); err != nil {
			s.logger().Warn("leave event failed", "channel", sub.channel, "err", err)
		}
	}
}

// SubscribeStream subscribes a non-bidirectional session (SSE) to channels,
// resuming each from its position in positions when positions is not nil.
// channels must be canonical (protocol.CanonicalChannels) and positions, if
// given, must have one entry per channel. tokens are the subscription
// tokens the stream brought, for channels in private namespaces.
func (s *Session) SubscribeStream(ctx context.Context, channels []string, positions []protocol.StreamPosition, tokens []string) error {
	if most := s.n.limits().MaxChannelsPerSession; len(channels) > most {
		return protocol.ErrLimitExceeded.With("at most %d channels per stream", most)
	}
	if positions != nil && len(positions) != len(channels) {
		return protocol.ErrInvalidPosition.With("%d positions for %d channels", len(positions), len(channels))
	}
	grants, err := s.n.VerifySubscriptionTokens(ctx, tokens, channels)
	if err != nil {
		return err
	}
	for i, ch := range channels {
		req := protocol.SubscribeRequest{Channel: ch}
		if positions != nil {
			req.Recover, req.Epoch, req.Offset = true, positions[i].Epoch, positions[i].Offset
		}
		origin := subscribeOrigin{}
		if g, ok := grants[ch]; ok {
			origin.grant = &g
		}
		if err := s.subscribe(ctx, origin, req); err != nil {
			return err
		}
	}
	return nil
}
