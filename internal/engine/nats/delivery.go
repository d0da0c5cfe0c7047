package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// numDeliveryShards is the number of delivery goroutines. Each channel maps
// to one shard, whose goroutine makes the handler's calls for the channel
// one at a time and in order, while other shards proceed in parallel.
const numDeliveryShards = 16

// shardQueue is each shard's queue of received messages. The connection's
// reader goroutine never waits for it: a message that finds it full is
// dropped and reported as a slow consumer, and its channel resynced, so a
// slow handler costs a repair, never the delivery of every other channel.
const shardQueue = 1 << 14

// controlQueue is the queue of received control-bus messages; they are rare.
const controlQueue = 1 << 10

// subscription is this node's subscription to one channel.
type subscription struct {
	sub *nats.Subscription
	// base is the channel's tail read by Subscribe once the server had the
	// subscription; nil until then. Guarded by the shard's mutex.
	base *tail
	// order is used only by the shard's goroutine.
	order ordering
}

// deliveryShard holds the subscriptions of the channels hashed to it and
// the queue their messages arrive on.
type deliveryShard struct {
	msgs chan *nats.Msg

	mu   sync.Mutex
	subs map[string]*subscription
	// Work for the shard's goroutine at its next wake: channels whose base
	// was read, and channels to resync (true: after a reconnect, so the
	// next arrival is taken as in order).
	based  map[string]struct{}
	resync map[string]bool
	wake   chan struct{}

	// Used only by the shard's goroutine: subscriptions holding
	// publications for a missing predecessor, and a timer for the earliest
	// of their deadlines.
	waiting map[string]*subscription
	timer   *time.Timer
	timerAt time.Time
}

// target is where deliveries go once Start has been called.
type target struct {
	handler engine.Handler
	resync  engine.ResyncHandler // nil when the handler cannot resync
}

// delivery is the node side of the engine: subscriptions and the ordered
// hand-off of what arrives on them to the handler.
type delivery struct {
	names   names
	log     *slog.Logger
	seed    maphash.Seed
	target  atomic.Pointer[target]
	shards  [numDeliveryShards]deliveryShard
	control chan *nats.Msg
}

func (d *delivery) init(n names, log *slog.Logger) {
	d.names, d.log = n, log
	d.seed = maphash.MakeSeed()
	for i := range d.shards {
		s := &d.shards[i]
		s.msgs = make(chan *nats.Msg, shardQueue)
		s.subs = make(map[string]*subscription)
		s.based = make(map[string]struct{})
		s.resync = make(map[string]bool)
		s.wake = make(chan struct{}, 1)
		s.waiting = make(map[string]*subscription)
		s.timer = time.NewTimer(time.Hour)
		s.timer.Stop()
	}
	d.control = make(chan *nats.Msg, controlQueue)
}

// start sets the handler and subscribes to the control bus, returning once
// the server has the subscriptions.
func (d *delivery) start(ctx context.Context, c *conn, nodeID string, h engine.Handler) error {
	t := &target{handler: h}
	t.resync, _ = h.(engine.ResyncHandler)
	d.target.Store(t)
	for _, subject := range []string{d.names.control, d.names.node(nodeID)} {
		if _, err := c.nc.ChanSubscribe(subject, d.control); err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("subscribe to the control bus: %w", err)
	}
	return nil
}

func (d *delivery) shard(channel string) *deliveryShard {
	return &d.shards[maphash.String(d.seed, channel)%numDeliveryShards]
}

// Subscribe makes this node receive the channel's deliveries. It returns
// once the server has the subscription, so every publication stored after
// it returns is delivered. It then reads the channel's tail: publications
// after it are delivered in offset order, older ones are the caller's to
// read from history.
func (e *Engine) Subscribe(ctx context.Context, channel string) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	s := e.delivery.shard(channel)
	s.mu.Lock()
	st := s.subs[channel]
	created := st == nil
	if created {
		sub, err := c.nc.ChanSubscribe(e.names.delivery(channel), s.msgs)
		if err != nil {
			s.mu.Unlock()
			return e.fail("subscribe", err)
		}
		st = &subscription{sub: sub}
		s.subs[channel] = st
	}
	s.mu.Unlock()
	// Flushed even when already subscribed: a concurrent first Subscribe
	// may not have flushed yet.
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	err = c.nc.FlushWithContext(ctx)
	var base tail
	if err == nil && created {
		base, _, err = e.readTail(ctx, c, channel)
	}
	if err != nil {
		if created {
			s.mu.Lock()
			if s.subs[channel] == st {
				delete(s.subs, channel)
			}
			s.mu.Unlock()
			_ = st.sub.Unsubscribe()
		}
		return e.fail("subscribe", err)
	}
	if created {
		s.mu.Lock()
		st.base = &base
		s.based[channel] = struct{}{}
		s.mu.Unlock()
		s.signal()
	}
	return nil
}

// Unsubscribe stops the channel's deliveries to this node. A handler call
// already in progress may still complete.
func (e *Engine) Unsubscribe(ctx context.Context, channel string) error {
	if _, err := e.client(ctx); err != nil {
		return err
	}
	s := e.delivery.shard(channel)
	s.mu.Lock()
	st := s.subs[channel]
	delete(s.subs, channel)
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	if err := st.sub.Unsubscribe(); err != nil {
		return e.fail("unsubscribe", err)
	}
	return nil
}

// PublishJoin delivers a join event to the channel's subscribed nodes.
func (e *Engine) PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error {
	return e.publishPresenceEvent(ctx, channel, kindJoin, info)
}

// PublishLeave delivers a leave event to the channel's subscribed nodes.
func (e *Engine) PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error {
	return e.publishPresenceEvent(ctx, channel, kindLeave, info)
}

func (e *Engine) publishPresenceEvent(ctx context.Context, channel, kind string, info protocol.ClientInfo) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("nats: publish %s: %w", kind, err)
	}
	msg := nats.NewMsg(e.names.delivery(channel))
	msg.Header[hdrKind] = []string{kind}
	msg.Data = data
	if err := c.nc.PublishMsg(msg); err != nil {
		return e.fail("publish "+kind, err)
	}
	return nil
}

// PublishControl sends data to node toNode, or to every node, this one
// included, when toNode is empty.
func (e *Engine) PublishControl(ctx context.Context, data []byte, toNode string) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	subject := e.names.control
	if toNode != "" {
		subject = e.names.node(toNode)
	}
	if err := c.nc.Publish(subject, data); err != nil {
		return e.fail("publish control", err)
	}
	return nil
}

// resync schedules a HandleResync call for channel, if subscribed, on its
// shard's goroutine.
func (d *delivery) resync(channel string) {
	s := d.shard(channel)
	s.mu.Lock()
	if _, queued := s.resync[channel]; !queued && s.subs[channel] != nil {
		s.resync[channel] = false
	}
	s.mu.Unlock()
	s.signal()
}

// resyncAll schedules a resync of every subscribed channel after a
// reconnect. What was published while disconnected is lost to the
// subscriptions, so their next arrivals are taken as in order rather than
// held for predecessors that will not come.
func (d *delivery) resyncAll() {
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		for ch := range s.subs {
			s.resync[ch] = true
		}
		s.mu.Unlock()
		s.signal()
	}
}

func (s *deliveryShard) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is one shard's delivery goroutine. Messages still queued when stop
// closes are dropped: Close stops deliveries.
func (d *delivery) run(s *deliveryShard, stop <-chan struct{}) {
	defer s.timer.Stop()
	for {
		select {
		case <-stop:
			return
		case m := <-s.msgs:
			d.dispatch(s, m)
		case <-s.wake:
			d.work(s)
		case <-s.timer.C:
			s.timerAt = time.Time{}
			d.expire(s)
		}
	}
}

// current returns channel's subscription if m arrived on it, nil if the
// channel was unsubscribed since or m is a previous subscription's leftover.
func (s *deliveryShard) current(channel string, m *nats.Msg) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.subs[channel]; st != nil && st.sub == m.Sub {
		return st
	}
	return nil
}

// dispatch hands one received message to the handler, stored publications
// through their subscription's ordering.
func (d *delivery) dispatch(s *deliveryShard, m *nats.Msg) {
	channel, ok := d.names.channelOfDelivery(m.Subject)
	if !ok {
		return
	}
	st := s.current(channel, m)
	if st == nil {
		return
	}
	t := d.target.Load()
	switch kind := get(m.Header, hdrKind); kind {
	case "":
		en, err := parseEntry(m.Header, 0)
		if err != nil {
			d.log.Error("undecodable delivery", "channel", channel, "err", err)
			return
		}
		pub, err := decodePublication(channel, en.offset, m.Header, m.Data)
		if err != nil {
			d.log.Error("undecodable publication", "channel", channel, "offset", en.offset, "err", err)
			return
		}
		st.order.add(pub, en.epoch, time.Now(), emit{t, channel})
		s.track(channel, st)
	case kindEphemeral:
		pub, err := decodePublication(channel, 0, m.Header, m.Data)
		if err != nil {
			d.log.Error("undecodable ephemeral publication", "channel", channel, "err", err)
			return
		}
		t.handler.HandlePublication(pub, "")
	case kindJoin, kindLeave:
		var info protocol.ClientInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			d.log.Error("undecodable "+kind, "channel", channel, "err", err)
			return
		}
		if kind == kindJoin {
			t.handler.HandleJoin(channel, info)
		} else {
			t.handler.HandleLeave(channel, info)
		}
	}
	// Epoch markers and tombstones are republished too; they deliver nothing.
}

// track keeps the shard's timer armed for st's reorder deadline, if any.
func (s *deliveryShard) track(channel string, st *subscription) {
	deadline := st.order.deadline
	if deadline.IsZero() {
		delete(s.waiting, channel)
		return
	}
	s.waiting[channel] = st
	if s.timerAt.IsZero() || deadline.Before(s.timerAt) {
		s.timerAt = deadline
		s.timer.Reset(time.Until(deadline))
	}
}

// expire ends the waits whose deadline has passed.
func (d *delivery) expire(s *deliveryShard) {
	t, now := d.target.Load(), time.Now()
	for channel, st := range s.waiting {
		s.mu.Lock()
		current := s.subs[channel] == st
		s.mu.Unlock()
		if !current {
			delete(s.waiting, channel)
			continue
		}
		st.order.expire(now, emit{t, channel})
		s.track(channel, st)
	}
}

// work runs what Subscribe and reconnects left for the shard's goroutine:
// starting orderings from their base, and resyncs.
func (d *delivery) work(s *deliveryShard) {
	type job struct {
		channel string
		st      *subscription
		base    *tail
		resync  bool
		rebase  bool
	}
	var jobs []job
	s.mu.Lock()
	for ch := range s.based {
		if st := s.subs[ch]; st != nil {
			jobs = append(jobs, job{channel: ch, st: st, base: st.base})
		}
	}
	for ch, rebase := range s.resync {
		if st := s.subs[ch]; st != nil {
			jobs = append(jobs, job{channel: ch, st: st, resync: true, rebase: rebase})
		}
	}
	clear(s.based)
	clear(s.resync)
	s.mu.Unlock()
	t, now := d.target.Load(), time.Now()
	for _, j := range jobs {
		out := emit{t, j.channel}
		if j.base != nil {
			j.st.order.start(*j.base, now, out)
		}
		if j.rebase {
			j.st.order.rebase = true
		}
		s.track(j.channel, j.st)
		if j.resync {
			out.lost()
		}
	}
}

// runControl delivers control-bus messages until stop closes.
func (d *delivery) runControl(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-d.control:
			d.target.Load().handler.HandleControl(m.Data)
		}
	}
}
