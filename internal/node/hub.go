package node

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// subscriber receives a channel's deliveries from the hub. Both methods run
// on the engine's delivery path and must not block.
type subscriber interface {
	// deliverPublication gets the publication, its channel epoch and the push
	// frame encoded once for all subscribers.
	deliverPublication(pub *protocol.Publication, epoch string, frame []byte)
	// deliverFrame gets any other push (join, leave) for the channel.
	deliverFrame(push string, frame []byte)
	// checkPosition gets the channel's current position after the engine
	// may have lost deliveries; a subscriber behind it missed something.
	checkPosition(top protocol.StreamPosition)
}

const hubShards = 64

// hub maps channels to this node's subscribers. It is sharded by channel so
// fan-out on one channel never waits for subscribe traffic on another, and it
// keeps one engine subscription per channel with local subscribers.
//
// Lock order: subLocks[i] before shards[j].mu. subLocks serialize the
// transitions between "no local subscriber" and "some" for a channel,
// including the engine call, without holding a shard lock over network I/O.
type hub struct {
	seed     maphash.Seed
	shards   [hubShards]hubShard
	subLocks [hubShards]sync.Mutex
	engine   channelSubscriber
	log      *slog.Logger
	resyncs  resyncQueue
	// delivered counts the copies of publications handed to subscribers.
	delivered atomic.Uint64
	// obs, when set, times each publication's fan-out: two clock reads per
	// publication, none per subscriber.
	obs Observer
	// occupancy, when set, learns of a channel's first local session
	// subscription (true) and of its last one leaving; it is called under
	// the channel's subLock and must not block. Long polls waiting on the
	// channel do not count: each poll would report the channel again.
	occupancy func(channel string, occupied bool)
}

// channelSubscriber is the part of the engine the hub drives.
type channelSubscriber interface {
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	History(ctx context.Context, channel string, q engine.HistoryQuery) (engine.HistoryResult, error)
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]*channelSubscribers
}

// channelSubscribers keeps a slice for fast fan-out and, once the channel
// has more than smallChannel local subscribers, an index for O(1) removal.
// Below that a scan of the slice is as fast, and a channel with one
// subscriber (the common case when clients spread over many channels) does
// not carry a map of about 250 bytes.
type channelSubscribers struct {
	list  []subscriber
	index map[subscriber]int
	// sessions counts the session subscriptions in list, for occupancy.
	sessions int
}

const smallChannel = 16

// find is s's position in the list, or -1.
func (cs *channelSubscribers) find(s subscriber) int {
	if cs.index != nil {
		if at, ok := cs.index[s]; ok {
			return at
		}
		return -1
	}
	for i, x := range cs.list {
		if x == s {
			return i
		}
	}
	return -1
}

// add appends s unless the list has it, reporting whether it was added.
func (cs *channelSubscribers) add(s subscriber) bool {
	if cs.find(s) >= 0 {
		return false
	}
	cs.list = append(cs.list, s)
	switch {
	case cs.index != nil:
		cs.index[s] = len(cs.list) - 1
	case len(cs.list) > smallChannel:
		cs.index = make(map[subscriber]int, len(cs.list))
		for i, x := range cs.list {
			cs.index[x] = i
		}
	}
	return true
}

// remove takes s out of the list and reports whether it was there.
func (cs *channelSubscribers) remove(s subscriber) bool {
	at := cs.find(s)
	if at < 0 {
		return false
	}
	last := len(cs.list) - 1
	cs.list[at] = cs.list[last]
	cs.list[last] = nil
	cs.list = cs.list[:last]
	if cs.index != nil {
		if at < last {
			cs.index[cs.list[at]] = at
		}
		delete(cs.index, s)
	}
	return true
}

func newHub(e channelSubscriber, log *slog.Logger) *hub {
	h := &hub{seed: maphash.MakeSeed(), engine: e, log: log}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channelSubscribers)
	}
	return h
}

func (h *hub) shardIndex(channel string) int {
	return int(maphash.String(h.seed, channel) % hubShards)
}

// add registers s for channel, subscribing the node to the engine when s is
// the first local subscriber. When add returns nil, s receives every
// publication the engine delivers from then on.
func (h *hub) add(ctx context.Context, channel string, s subscriber) error {
	i := h.shardIndex(channel)
	h.subLocks[i].Lock()
	defer h.subLocks[i].Unlock()
	sh := &h.shards[i]
	sh.mu.Lock()
	cs, ok := sh.channels[channel]
	if !ok {
		cs = &channelSubscribers{}
		sh.channels[channel] = cs
	}
	occupied := false
	if _, session := s.(*subscription); cs.add(s) && session {
		occupied = cs.sessions == 0
		cs.sessions++
	}
	sh.mu.Unlock()
	if !ok {
		if err := h.engine.Subscribe(ctx, channel); err != nil {
			sh.mu.Lock()
			delete(sh.channels, channel)
			sh.mu.Unlock()
			return err
		}
	}
	if occupied && h.occupancy != nil {
		h.occupancy(channel, true)
	}
	return nil
}

// remove unregisters s from channel and unsubscribes the node from the engine
// when no local subscriber is left. It reports the engine's error, if any;
// s is removed either way.
func (h *hub) remove(ctx context.Context, channel string, s subscriber) error {
	i := h.shardIndex(channel)
	h.subLocks[i].Lock()
	defer h.subLocks[i].Unlock()
	sh := &h.shards[i]
	sh.mu.Lock()
	cs, ok := sh.channels[channel]
	if !ok {
		sh.mu.Unlock()
		return nil
	}
	if !cs.remove(s) {
		sh.mu.Unlock()
		return nil
	}
	vacated := false
	if _, session := s.(*subscription); session {
		cs.sessions--
		vacated = cs.sessions == 0
	}
	empty := len(cs.list) == 0
	if empty {
		delete(sh.channels, channel)
	}
	sh.mu.Unlock()
	if vacated && h.occupancy != nil {
		h.occupancy(channel, false)
	}
	if empty {
		return h.engine.Unsubscribe(ctx, channel)
	}
	return nil
}

// publish fans pub out to the channel's local subscribers. The frame is
// encoded once here, and only if someone listens.
func (h *hub) publish(pub *protocol.Publication, epoch string) {
	sh := &h.shards[h.shardIndex(pub.Channel)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	cs := sh.channels[pub.Channel]
	if cs == nil {
		return
	}
	var began time.Time
	if h.obs != nil {
		began = time.Now()
	}
	frame := protocol.AppendPublication(make([]byte, 0, 96+len(pub.Data)), pub)
	h.delivered.Add(uint64(len(cs.list)))
	for _, s := range cs.list {
		s.deliverPublication(pub, epoch, frame)
	}
	if h.obs != nil {
		h.obs.FannedOut(time.Since(began))
	}
}

// broadcastFrame sends a non-publication push to the channel's subscribers,
// encoding it only if someone listens. A push that does not encode is
// dropped with the error returned.
func (h *hub) broadcastFrame(channel, push string, encode func() ([]byte, error)) error {
	sh := &h.shards[h.shardIndex(channel)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	cs := sh.channels[channel]
	if cs == nil {
		return nil
	}
	frame, err := encode()
	if err != nil {
		return err
	}
	for _, s := range cs.list {
		s.deliverFrame(push, frame)
	}
	return nil
}

// channelCounts calls fn for every channel with local subscribers.
func (h *hub) channelCounts(fn func(channel string, subscribers int)) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for ch, cs := range sh.channels {
			fn(ch, len(cs.list))
		}
		sh.mu.RUnlock()
	}
}

// someChannels calls fn for channels with local subscribers until it
// returns false. It starts at a random shard, so that callers that stop
// early see different channels from one call to the next.
func (h *hub) someChannels(fn func(channel string) bool) {
	start := rand.IntN(hubShards)
	for i := range hubShards {
		sh := &h.shards[(start+i)%hubShards]
		sh.mu.RLock()
		for ch := range sh.channels {
			if !fn(ch) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}

// numChannels counts channels with local subscribers.
func (h *hub) numChannels() int {
	n := 0
	h.channelCounts(func(string, int) { n++ })
	return n
}

// resyncTimeout bounds the position read of one resync; resyncWorkers
// bounds the reads in flight after a broker outage, which names every
// subscribed channel at once.
const (
	resyncTimeout = 10 * time.Second
	resyncWorkers = 4
)

// resyncQueue holds the channels waiting for a resync, each once, and
// counts the workers draining it.
type resyncQueue struct {
	mu      sync.Mutex
	pending map[string]struct{}
	workers int
}

// resync checks the channel's subscribers against its current position once
// the engine has restored a subscription that may have lost deliveries. The
// position read is I/O, so it runs off the delivery path on at most
// resyncWorkers goroutines, which exit once nothing is pending.
func (h *hub) resync(channel string) {
	q := &h.resyncs
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = make(map[string]struct{})
	}
	q.pending[channel] = struct{}{}
	if q.workers < resyncWorkers {
		q.workers++
		go h.resyncWorker()
	}
}

func (h *hub) resyncWorker() {
	q := &h.resyncs
	for {
		q.mu.Lock()
		channel, ok := "", false
		for channel = range q.pending {
			ok = true
			break
		}
		if !ok {
			q.workers--
			q.mu.Unlock()
			return
		}
		delete(q.pending, channel)
		q.mu.Unlock()
		h.checkChannel(channel)
	}
}

// checkChannel reads the channel's position and hands it to every local
// subscriber.
func (h *hub) checkChannel(channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
	defer cancel()
	res, err := h.engine.History(ctx, channel, engine.HistoryQuery{})
	if err != nil {
		h.log.Warn("resync: position read failed", "channel", channel, "err", err)
		return
	}
	sh := &h.shards[h.shardIndex(channel)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if cs := sh.channels[channel]; cs != nil {
		for _, s := range cs.list {
			s.checkPosition(res.Position)
		}
	}
}
