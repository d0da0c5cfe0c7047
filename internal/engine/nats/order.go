package nats

import (
	"slices"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// reorderWindow is how long a stored publication that arrived ahead of a
// missing predecessor is held for it. A single nats-server 2.9 stores the
// publishes of different connections concurrently and republishes each
// after releasing the stream's lock, so two consecutive offsets can arrive
// swapped; the straggler follows within microseconds. A predecessor still
// missing after the window was lost (a slow consumer, a reconnect): the
// held publications are delivered and the channel resynced.
const reorderWindow = time.Second

// held is a stored publication waiting for its predecessors.
type held struct {
	pub   *protocol.Publication
	epoch string
}

// ordering puts one subscription's stored publications back in offset
// order, drops repeats and notices losses. Only its shard's goroutine uses
// it.
type ordering struct {
	// ready is set once the channel's tail at subscribe time is known: the
	// publications after it are the ones to deliver. Until then arrivals
	// are held.
	ready bool
	epoch string // "" until the channel has a stored message
	last  uint64 // offset of the last delivered publication
	// rebase accepts the next arrival as in order whatever its offset,
	// after a reconnect has lost messages that a resync repairs.
	rebase   bool
	held     []held // by offset
	deadline time.Time
}

// emit is where an ordering sends one channel's publications, in order,
// and reports losses.
type emit struct {
	t       *target
	channel string
}

func (e emit) deliver(pub *protocol.Publication, epoch string) {
	e.t.handler.HandlePublication(pub, epoch)
}

// lost asks the handler to repair the channel from history.
func (e emit) lost() {
	if e.t.resync != nil {
		e.t.resync.HandleResync(e.channel)
	}
}

// start makes the ordering ready from the channel's tail when Subscribe
// read it, and replays what arrived meanwhile.
func (o *ordering) start(t tail, now time.Time, out emit) {
	o.ready, o.epoch, o.last = true, t.epoch, t.offset
	early := o.held
	o.held = nil
	for _, h := range early {
		o.add(h.pub, h.epoch, now, out)
	}
}

// add takes one arriving stored publication.
func (o *ordering) add(pub *protocol.Publication, epoch string, now time.Time, out emit) {
	if !o.ready {
		o.hold(pub, epoch)
		return
	}
	if o.epoch != "" && epoch != o.epoch {
		// The channel's history was lost and began again: nothing before
		// this publication can be waited for.
		o.held, o.deadline = nil, time.Time{}
		o.epoch, o.last = epoch, pub.Offset
		out.deliver(pub, epoch)
		out.lost()
		return
	}
	o.epoch = epoch
	if pub.Offset <= o.last {
		return // a repeat, or older than the subscription
	}
	if o.rebase {
		o.rebase = false
		o.release(out)
		if pub.Offset > o.last {
			o.last = pub.Offset
			out.deliver(pub, epoch)
		}
		return
	}
	o.hold(pub, epoch)
	for len(o.held) > 0 && o.held[0].pub.Offset == o.last+1 {
		h := o.held[0]
		o.held = o.held[1:]
		o.last++
		out.deliver(h.pub, h.epoch)
	}
	switch {
	case len(o.held) == 0:
		o.held, o.deadline = nil, time.Time{}
	case o.deadline.IsZero():
		o.deadline = now.Add(reorderWindow)
	}
}

// hold inserts a publication in offset order, ignoring one already held.
func (o *ordering) hold(pub *protocol.Publication, epoch string) {
	i, found := slices.BinarySearchFunc(o.held, pub.Offset, func(h held, off uint64) int {
		switch {
		case h.pub.Offset < off:
			return -1
		case h.pub.Offset > off:
			return 1
		}
		return 0
	})
	if !found {
		o.held = slices.Insert(o.held, i, held{pub: pub, epoch: epoch})
	}
}

// expire gives up waiting if the deadline has passed: it delivers what is
// held, in order and past the gaps, and reports the loss. It returns the
// deadline still pending, or zero.
func (o *ordering) expire(now time.Time, out emit) time.Time {
	if o.deadline.IsZero() || now.Before(o.deadline) {
		return o.deadline
	}
	o.release(out)
	out.lost()
	return time.Time{}
}

// release delivers everything held, in order, skipping gaps.
func (o *ordering) release(out emit) {
	for _, h := range o.held {
		if h.pub.Offset > o.last {
			o.last = h.pub.Offset
			out.deliver(h.pub, h.epoch)
		}
	}
	o.held, o.deadline = nil, time.Time{}
}
