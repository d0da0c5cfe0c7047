package memory

import (
	"bytes"
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// numDeliveryShards is the number of delivery goroutines. Each channel maps
// to one shard, whose single goroutine is what makes the handler's calls for a
// channel one at a time and in order, while channels on other shards proceed
// in parallel.
const numDeliveryShards = 16

// maxQueuedEvents bounds each shard's queue. A publisher that finds it full
// waits for the delivery goroutine to catch up: backpressure instead of
// unbounded memory when publishes outpace fan-out.
const maxQueuedEvents = 1 << 14

type eventKind uint8

const (
	evPublication eventKind = iota
	evJoin
	evLeave
	evControl
)

// event is one pending handler call.
type event struct {
	kind    eventKind
	channel string
	pub     *protocol.Publication
	epoch   string
	info    protocol.ClientInfo
	data    []byte
}

// deliveryShard queues the events of the channels hashed to it and records
// which of them this node is subscribed to.
//
// Lock order: channel.mu (history.go) → subsMu → the queue's lock.
type deliveryShard struct {
	subsMu sync.RWMutex
	subs   map[string]struct{}

	// queue holds at most maxQueuedEvents publication and presence events;
	// control events may exceed it.
	queue engine.DeliveryQueue[event]
}

func (s *deliveryShard) subscribed(channel string) bool {
	s.subsMu.RLock()
	_, ok := s.subs[channel]
	s.subsMu.RUnlock()
	return ok
}

// target is where deliveries go once Start has been called.
type target struct {
	nodeID  string
	handler engine.Handler
}

// delivery is the node side of the engine: subscriptions and the ordered
// hand-off of publications, presence events and control messages to the
// handler.
type delivery struct {
	seed   maphash.Seed
	target atomic.Pointer[target]
	shards [numDeliveryShards]deliveryShard
}

func (d *delivery) init(seed maphash.Seed) {
	d.seed = seed
	for i := range d.shards {
		d.shards[i].subs = make(map[string]struct{})
		d.shards[i].queue.Init(maxQueuedEvents)
	}
}

// start sets the handler; it reports false if one was already set.
func (d *delivery) start(nodeID string, h engine.Handler) bool {
	return d.target.CompareAndSwap(nil, &target{nodeID: nodeID, handler: h})
}

func (d *delivery) shard(channel string) *deliveryShard {
	return &d.shards[maphash.String(d.seed, channel)%numDeliveryShards]
}

// enqueue schedules ev for delivery, dropping channel events for channels
// this node is not subscribed to. Events enqueued for one channel are
// delivered in enqueue order, so callers enqueue under the lock that ordered
// them.
func (d *delivery) enqueue(ev event) {
	s := d.shard(ev.channel)
	if ev.kind != evControl && !s.subscribed(ev.channel) {
		return
	}
	s.queue.Push(ev, ev.kind != evControl)
}

// run is one shard's delivery goroutine. Events still queued at stop are
// dropped: Close stops deliveries.
func (d *delivery) run(s *deliveryShard, stop <-chan struct{}) {
	s.queue.Run(stop, func(ev *event) { d.dispatch(s, ev) })
}

func (d *delivery) dispatch(s *deliveryShard, ev *event) {
	t := d.target.Load()
	if t == nil {
		return
	}
	// Checked again here, not only at enqueue, so nothing is delivered for a
	// channel once Unsubscribe has returned.
	if ev.kind != evControl && !s.subscribed(ev.channel) {
		return
	}
	switch ev.kind {
	case evPublication:
		t.handler.HandlePublication(ev.pub, ev.epoch)
	case evJoin:
		t.handler.HandleJoin(ev.channel, ev.info)
	case evLeave:
		t.handler.HandleLeave(ev.channel, ev.info)
	case evControl:
		t.handler.HandleControl(ev.data)
	}
}

// Subscribe makes this node receive the channel's deliveries.
func (e *Engine) Subscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	s := e.delivery.shard(channel)
	s.subsMu.Lock()
	s.subs[channel] = struct{}{}
	s.subsMu.Unlock()
	return nil
}

// Unsubscribe stops the channel's deliveries to this node. A handler call
// already in progress may still complete.
func (e *Engine) Unsubscribe(ctx context.Context, channel string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	s := e.delivery.shard(channel)
	s.subsMu.Lock()
	delete(s.subs, channel)
	s.subsMu.Unlock()
	return nil
}

// PublishJoin delivers a join event if this node is subscribed to channel.
func (e *Engine) PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	e.delivery.enqueue(event{kind: evJoin, channel: channel, info: info})
	return nil
}

// PublishLeave delivers a leave event if this node is subscribed to channel.
func (e *Engine) PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	e.delivery.enqueue(event{kind: evLeave, channel: channel, info: info})
	return nil
}

// PublishControl delivers data to this node's HandleControl when toNode is
// empty or this node's id; other node ids have no one to reach in a
// one-node engine, and before Start there is no node at all. Delivery is
// asynchronous, so a handler may publish control messages itself.
func (e *Engine) PublishControl(ctx context.Context, data []byte, toNode string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	t := e.delivery.target.Load()
	if t == nil || (toNode != "" && toNode != t.nodeID) {
		return nil
	}
	e.delivery.enqueue(event{kind: evControl, data: bytes.Clone(data)})
	return nil
}

// Deliver hands pub to the handler as if it had been published here: in the
// channel's delivery order and only if this node is subscribed to
// pub.Channel. It does not store pub. Engines that keep history elsewhere use
// it to reuse this engine's delivery; they must call it in offset order for
// each channel. pub must not be modified afterwards.
func (e *Engine) Deliver(pub *protocol.Publication, epoch string) {
	if e.closed.Load() {
		return
	}
	e.delivery.enqueue(event{kind: evPublication, channel: pub.Channel, pub: pub, epoch: epoch})
}

// check reports why a call cannot proceed: the engine is closed or ctx is done.
func (e *Engine) check(ctx context.Context) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return ctx.Err()
}
