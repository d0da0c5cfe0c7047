package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/engine"
)

// maxOpsPerRoundTrip bounds the subscribe and unsubscribe commands sent in
// one pipelined batch, so resubscribing many channels after a reconnect
// neither builds one huge write nor holds replies back for long.
const maxOpsPerRoundTrip = 1000

// subscription is this node's subscription to one channel.
type subscription struct {
	channel string
	name    string // the channel's Redis pub/sub channel
	slot    uint16 // its cluster hash slot
	// ready is closed once Redis has first confirmed the subscription, or
	// refused it with err.
	ready chan struct{}
	err   error // set before ready is closed
	// conn is the connection the subscription is held on; messages that
	// arrive on another are dropped.
	conn atomic.Pointer[psConn]
	// resync asks for a HandleResync call when Redis next confirms the
	// subscription. It is set when a confirmed subscription has to be made
	// again, as publications may have been missed in between.
	resync atomic.Bool

	confirmed bool // guarded by subscriber.mu

	// Owned by the channel's delivery goroutine.
	lastEpoch  string
	lastOffset uint64
}

// psOp is one subscription change for a connection to make: subscribe sub,
// or unsubscribe the Redis channel unsub.
type psOp struct {
	sub   *subscription
	unsub string
}

// psConn is one dedicated pub/sub connection and the goroutine that keeps
// it. The goroutine connects when the connection has subscriptions to hold,
// makes them all, then applies changes in the order they were asked for;
// when the connection fails it reconnects with backoff and starts over.
type psConn struct {
	s    *subscriber
	addr string // the cluster node it connects to; "" outside a cluster
	wake chan struct{}

	// Guarded by subscriber.mu.
	assigned map[string]*subscription // by channel
	ops      []psOp
	// refused holds subscriptions a cluster node redirected, for the
	// rebalancer to make again where they belong.
	refused map[*subscription]struct{}
}

// subscriber holds the node's subscriptions on dedicated pub/sub
// connections: one in standalone and Sentinel mode, one per master in a
// cluster, where a sharded subscription must be made on the node owning the
// channel's slot.
type subscriber struct {
	e       *Engine
	cluster bool

	// mu guards the connections, their assigned subscriptions and queued
	// changes, subscriptions' confirmed flags and slots. It is never held
	// while waiting for Redis: connection readers take it.
	mu    sync.Mutex
	conns map[string]*psConn // by addr
	slots []string           // cluster only: the master owning each slot
	// refresh wakes the cluster rebalancer (cluster.go).
	refresh chan struct{}
}

func newSubscriber(e *Engine, cluster bool) *subscriber {
	return &subscriber{
		e:       e,
		cluster: cluster,
		conns:   make(map[string]*psConn),
		refresh: make(chan struct{}, 1),
	}
}

// start prepares the subscriber; in a cluster it reads which node owns
// which slot and starts the rebalancer.
func (s *subscriber) start(ctx context.Context) error {
	if !s.cluster {
		return nil
	}
	slots, err := s.fetchSlots(ctx)
	if err != nil {
		return fmt.Errorf("redis: start: %w", err)
	}
	s.slots = slots
	s.e.wg.Add(1)
	go func() {
		defer s.e.wg.Done()
		s.rebalanceLoop()
	}()
	return nil
}

// Subscribe makes this node receive the channel's publications and
// join/leave events. It returns once Redis has confirmed the subscription,
// so every publication made after it returns is delivered.
func (e *Engine) Subscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	sub := e.subs.add(channel)
	select {
	case <-sub.ready:
		if sub.err != nil {
			e.subs.remove(channel, sub)
			return fmt.Errorf("redis: subscribe %s: %w", channel, sub.err)
		}
		return nil
	case <-ctx.Done():
		e.subs.remove(channel, sub)
		return fmt.Errorf("redis: subscribe %s: waiting for Redis to confirm: %w", channel, ctx.Err())
	case <-e.ctx.Done():
		return engine.ErrClosed
	}
}

// Unsubscribe stops the channel's deliveries to this node at once; the
// Redis subscription is dropped shortly after.
func (e *Engine) Unsubscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	e.subs.remove(channel, nil)
	return nil
}

// add returns the node's subscription to channel, making it if needed.
func (s *subscriber) add(channel string) *subscription {
	sh := s.e.delivery.shard(channel)
	s.mu.Lock()
	sh.subsMu.Lock()
	sub := sh.subs[channel]
	if sub != nil {
		sh.subsMu.Unlock()
		s.mu.Unlock()
		return sub
	}
	name := s.e.keys(channel).pubsub()
	sub = &subscription{channel: channel, name: name, slot: keySlot(name), ready: make(chan struct{})}
	sh.subs[channel] = sub
	sh.subsMu.Unlock()
	c := s.connFor(sub.slot)
	c.assign(sub)
	s.mu.Unlock()
	c.signal()
	return sub
}

// remove drops the node's subscription to channel, if it is sub (any, if sub
// is nil).
func (s *subscriber) remove(channel string, sub *subscription) {
	sh := s.e.delivery.shard(channel)
	s.mu.Lock()
	sh.subsMu.Lock()
	cur := sh.subs[channel]
	if cur == nil || (sub != nil && cur != sub) {
		sh.subsMu.Unlock()
		s.mu.Unlock()
		return
	}
	delete(sh.subs, channel)
	sh.subsMu.Unlock()
	c := cur.conn.Load()
	c.unassign(cur)
	s.mu.Unlock()
	c.signal()
}

// connFor returns the connection for subscriptions in slot, creating it if
// needed. Caller must hold s.mu.
func (s *subscriber) connFor(slot uint16) *psConn {
	addr := ""
	if s.cluster {
		addr = s.slots[slot]
	}
	c := s.conns[addr]
	if c == nil {
		c = &psConn{
			s:        s,
			addr:     addr,
			wake:     make(chan struct{}, 1),
			assigned: make(map[string]*subscription),
			refused:  make(map[*subscription]struct{}),
		}
		s.conns[addr] = c
		s.e.wg.Add(1)
		go func() {
			defer s.e.wg.Done()
			c.run()
		}()
	}
	return c
}

// assign makes c hold sub. Caller must hold s.mu, then signal c.
func (c *psConn) assign(sub *subscription) {
	sub.conn.Store(c)
	c.assigned[sub.channel] = sub
	c.ops = append(c.ops, psOp{sub: sub})
}

// unassign makes c drop sub. Caller must hold s.mu, then signal c.
func (c *psConn) unassign(sub *subscription) {
	if c.assigned[sub.channel] == sub {
		delete(c.assigned, sub.channel)
	}
	delete(c.refused, sub)
	c.ops = append(c.ops, psOp{unsub: sub.name})
}

// resubscribe queues sub to be made again on c, which it is assigned to,
// and asks for a resync. Caller must hold s.mu, then signal c.
func (c *psConn) resubscribe(sub *subscription) {
	if sub.confirmed {
		sub.resync.Store(true)
	}
	c.ops = append(c.ops, psOp{sub: sub})
}

func (c *psConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run keeps the connection until the engine closes.
func (c *psConn) run() {
	e := c.s.e
	var delay time.Duration
	for c.await() {
		err := c.session()
		if e.ctx.Err() != nil {
			return
		}
		if err == nil { // idle: nothing left to hold
			delay = 0
			continue
		}
		delay = nextBackoff(delay)
		e.log.Warn("pub/sub connection failed; reconnecting", "node", c.addr, "error", err, "retry_in", delay)
		c.s.troubled()
		if !e.sleep(jitter(delay)) {
			return
		}
	}
}

// await waits until the connection has subscriptions to hold, reporting
// false when the engine closes first. Queued unsubscribes are moot then:
// without a connection there is nothing to unsubscribe.
func (c *psConn) await() bool {
	for {
		c.s.mu.Lock()
		busy := len(c.assigned) > 0
		if !busy {
			c.ops = nil
		}
		c.s.mu.Unlock()
		if busy {
			return true
		}
		select {
		case <-c.s.e.ctx.Done():
			return false
		case <-c.wake:
		}
	}
}

// session connects, subscribes everything assigned, and applies changes
// until the connection fails (returning why), the engine closes, or, in a
// cluster, nothing is left to hold (returning nil).
func (c *psConn) session() error {
	e := c.s.e
	dc, err := c.s.dedicate(c.addr)
	if err != nil {
		return err
	}
	defer dc.Close()
	lost := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      c.onMessage,
		OnSubscription: c.onSubscription,
	})

	// A new connection holds nothing yet: everything assigned is made now,
	// which subsumes the changes queued so far.
	c.s.mu.Lock()
	ops := make([]psOp, 0, len(c.assigned))
	for _, sub := range c.assigned {
		if sub.confirmed {
			sub.resync.Store(true)
		}
		ops = append(ops, psOp{sub: sub})
	}
	c.ops = nil
	c.s.mu.Unlock()

	for {
		if err := c.apply(dc, ops); err != nil {
			return err
		}
		select {
		case <-e.ctx.Done():
			return nil
		case err, ok := <-lost:
			if !ok || err == nil {
				err = errors.New("connection closed")
			}
			return err
		case <-c.wake:
		}
		c.s.mu.Lock()
		ops, c.ops = c.ops, nil
		idle := c.s.cluster && len(c.assigned) == 0
		c.s.mu.Unlock()
		if idle {
			return nil
		}
	}
}

// apply sends ops in order, in pipelined batches, and marks subscriptions
// confirmed. A connection failure is returned. A subscription Redis refuses
// fails its Subscribe, except that in a cluster a redirect (its slot has
// moved) leaves it to the rebalancer.
func (c *psConn) apply(dc rueidis.DedicatedClient, ops []psOp) error {
	e := c.s.e
	for len(ops) > 0 {
		batch := ops[:min(len(ops), maxOpsPerRoundTrip)]
		ops = ops[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, op := range batch {
			cmds[i] = c.s.command(dc, op)
		}
		results := dc.DoMulti(e.ctx, cmds...)
		var refusal error
		redirected := false
		c.s.mu.Lock()
		for i, op := range batch {
			err := results[i].Error()
			if err != nil {
				rerr, ok := rueidis.IsRedisErr(err)
				if !ok {
					c.s.mu.Unlock()
					return err
				}
				refusal = err
				sub := op.sub
				if sub == nil || c.assigned[sub.channel] != sub {
					continue
				}
				if c.s.cluster && isRedirect(rerr) {
					c.refused[sub] = struct{}{}
					redirected = true
				} else if !sub.confirmed {
					sub.err = err
					close(sub.ready)
				}
				continue
			}
			if sub := op.sub; sub != nil && c.assigned[sub.channel] == sub && !sub.confirmed && sub.err == nil {
				sub.confirmed = true
				close(sub.ready)
			}
		}
		c.s.mu.Unlock()
		if refusal != nil {
			e.log.Warn("Redis refused a subscription change", "node", c.addr, "error", refusal)
		}
		if redirected {
			c.s.troubled()
		}
	}
	return nil
}

// isRedirect reports whether err says a cluster slot is elsewhere or in
// flux, which a later attempt will get past.
func isRedirect(err *rueidis.RedisError) bool {
	_, moved := err.IsMoved()
	_, ask := err.IsAsk()
	return moved || ask || err.IsTryAgain() || err.IsClusterDown()
}

// command is the Redis command for op.
func (s *subscriber) command(dc rueidis.DedicatedClient, op psOp) rueidis.Completed {
	b := dc.B()
	switch {
	case op.sub != nil && s.e.sharded:
		return b.Ssubscribe().Channel(op.sub.name).Build()
	case op.sub != nil:
		return b.Subscribe().Channel(op.sub.name).Build()
	case s.e.sharded:
		return b.Sunsubscribe().Channel(op.unsub).Build()
	default:
		return b.Unsubscribe().Channel(op.unsub).Build()
	}
}

// dedicate takes a connection of its own to the node at addr (the master,
// outside a cluster).
func (s *subscriber) dedicate(addr string) (rueidis.DedicatedClient, error) {
	client := s.e.client
	if s.cluster {
		if client = s.e.client.Nodes()[addr]; client == nil {
			return nil, fmt.Errorf("cluster node %q unknown to the client", addr)
		}
	}
	dc, _ := client.Dedicate() // Close releases it
	return dc, nil
}

// onMessage runs on the connection's reader: it only queues.
func (c *psConn) onMessage(m rueidis.PubSubMessage) {
	if channel := c.s.e.channelOf(m.Channel); channel != "" {
		c.s.e.delivery.message(c, channel, m.Message)
	}
}

// onSubscription runs on the connection's reader for every subscribe and
// unsubscribe Redis reports, in order with the messages.
func (c *psConn) onSubscription(ps rueidis.PubSubSubscription) {
	e := c.s.e
	channel := e.channelOf(ps.Channel)
	if channel == "" {
		return
	}
	sub := e.delivery.lookup(channel)
	if sub == nil || sub.conn.Load() != c {
		return // no longer wanted here: an unsubscribe the node asked for
	}
	switch ps.Kind {
	case "ssubscribe", "subscribe":
		// Queued here rather than when the command returns, so the resync
		// comes before any publication of the restored subscription.
		if sub.resync.CompareAndSwap(true, false) {
			e.delivery.resynced(sub)
		}
	case "sunsubscribe", "unsubscribe":
		// Redis dropped a subscription the node holds: in a cluster, its
		// slot moved to another node.
		c.s.mu.Lock()
		if c.assigned[channel] == sub {
			c.resubscribe(sub)
		}
		c.s.mu.Unlock()
		c.signal()
		c.s.troubled()
	}
}

// jitter spreads reconnections of many nodes over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
