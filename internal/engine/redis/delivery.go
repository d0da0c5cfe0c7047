package redis

import (
	"hash/maphash"
	"sync"

	"github.com/heraldrt/herald/internal/engine"
)

// numDeliveryShards is the number of delivery goroutines. Each channel maps
// to one shard, whose single goroutine is what makes the handler's calls for a
// channel one at a time and in order, while channels on other shards proceed
// in parallel.
const numDeliveryShards = 16

// maxQueuedEvents bounds each shard's queue. A pub/sub reader that finds it
// full waits: Redis then buffers for this node, and disconnects it past its
// client-output-buffer-limit, after which the engine resubscribes and asks
// the handler to resync. Memory stays bounded either way.
const maxQueuedEvents = 1 << 14

type eventKind uint8

const (
	evMessage eventKind = iota // a message on a channel's pub/sub channel
	evResync                   // the channel's subscription was restored
	evControl
)

// event is one pending handler call. Messages are decoded by the delivery
// goroutine, not the connection's reader, so the reader only queues.
type event struct {
	kind eventKind
	sub  *subscription
	msg  string
	data []byte // control message
}

// deliveryShard queues the events of the channels hashed to it and holds
// this node's subscriptions to them.
//
// Lock order: subscriber.mu → subsMu → the queue's lock.
type deliveryShard struct {
	subsMu sync.RWMutex
	subs   map[string]*subscription

	// queue holds at most maxQueuedEvents channel events; control events
	// may exceed it.
	queue engine.DeliveryQueue[event]
}

// delivery hands what Redis sends to the handler, in order per channel.
type delivery struct {
	seed    maphash.Seed
	handler engine.Handler
	resync  engine.ResyncHandler // nil if the handler does not implement it
	shards  [numDeliveryShards]deliveryShard
}

func (d *delivery) init() {
	d.seed = maphash.MakeSeed()
	for i := range d.shards {
		d.shards[i].subs = make(map[string]*subscription)
		d.shards[i].queue.Init(maxQueuedEvents)
	}
}

// start sets the handler and starts the delivery goroutines.
func (d *delivery) start(e *Engine, h engine.Handler) {
	d.handler = h
	d.resync, _ = h.(engine.ResyncHandler)
	e.wg.Add(len(d.shards))
	for i := range d.shards {
		go func() {
			defer e.wg.Done()
			d.run(e, &d.shards[i])
		}()
	}
}

func (d *delivery) shard(channel string) *deliveryShard {
	return &d.shards[maphash.String(d.seed, channel)%numDeliveryShards]
}

// lookup returns the node's subscription to channel, or nil.
func (d *delivery) lookup(channel string) *subscription {
	s := d.shard(channel)
	s.subsMu.RLock()
	sub := s.subs[channel]
	s.subsMu.RUnlock()
	return sub
}

// current reports whether sub is still the node's subscription to its
// channel.
func (s *deliveryShard) current(sub *subscription) bool {
	s.subsMu.RLock()
	defer s.subsMu.RUnlock()
	return s.subs[sub.channel] == sub
}

// message queues msg, received on c for channel, if the node is subscribed
// to channel there: messages from a connection the subscription has moved
// away from are duplicates.
func (d *delivery) message(c *psConn, channel, msg string) {
	s := d.shard(channel)
	s.subsMu.RLock()
	sub := s.subs[channel]
	s.subsMu.RUnlock()
	if sub == nil || sub.conn.Load() != c {
		return
	}
	s.enqueue(event{kind: evMessage, sub: sub, msg: msg})
}

// resynced queues the HandleResync call for sub.
func (d *delivery) resynced(sub *subscription) {
	if d.resync != nil {
		d.shard(sub.channel).enqueue(event{kind: evResync, sub: sub})
	}
}

// control queues a control message.
func (d *delivery) control(data []byte) {
	d.shards[0].enqueue(event{kind: evControl, data: data})
}

func (s *deliveryShard) enqueue(ev event) {
	s.queue.Push(ev, ev.kind != evControl)
}

// run is one shard's delivery goroutine; events still queued when the
// engine closes are dropped.
func (d *delivery) run(e *Engine, s *deliveryShard) {
	s.queue.Run(e.ctx.Done(), func(ev *event) { d.dispatch(e, s, ev) })
}

func (d *delivery) dispatch(e *Engine, s *deliveryShard, ev *event) {
	if ev.kind == evControl {
		d.handler.HandleControl(ev.data)
		return
	}
	// Checked again here, not only when queued, so nothing is delivered for
	// a channel once Unsubscribe has returned.
	sub := ev.sub
	if !s.current(sub) {
		return
	}
	if ev.kind == evResync {
		d.resync.HandleResync(sub.channel)
		return
	}
	if ev.msg == "" {
		return
	}
	switch ev.msg[0] {
	case msgPublication:
		pub, epoch, err := decodePublication(sub.channel, ev.msg[1:])
		if err != nil {
			e.log.Error("dropped an undecodable publication", "channel", sub.channel, "error", err)
			return
		}
		if pub.Offset > 0 {
			// A publication can arrive twice when its subscription moved
			// between connections; offsets never repeat within an epoch.
			if epoch == sub.lastEpoch && pub.Offset <= sub.lastOffset {
				return
			}
			sub.lastEpoch, sub.lastOffset = epoch, pub.Offset
		}
		d.handler.HandlePublication(pub, epoch)
	case msgJoin, msgLeave:
		info, err := decodeInfo(ev.msg[1:])
		if err != nil {
			e.log.Error("dropped an undecodable presence event", "channel", sub.channel, "error", err)
			return
		}
		if ev.msg[0] == msgJoin {
			d.handler.HandleJoin(sub.channel, info)
		} else {
			d.handler.HandleLeave(sub.channel, info)
		}
	}
}
