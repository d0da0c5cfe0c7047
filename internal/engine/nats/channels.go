package nats

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// numChannelShards spreads cached channels over independent locks so
// publishers to different channels rarely contend.
const numChannelShards = 64

// idleChannelTTL is how long a channel's cached tail outlives its last use.
// Forgetting it costs the next publish one extra read.
const idleChannelTTL = time.Minute

// tail is a channel's last stored message, which a publish extends.
type tail struct {
	seq    uint64 // stream sequence; 0 when the channel has no message
	offset uint64
	floor  uint64
	epoch  string // "" when the channel has no message
}

// channel is this node's view of one channel's tail. Its mutex serializes
// this node's writes to the channel: publishers here wait for each other
// instead of racing JetStream's sequence check, which only has to settle
// races with other nodes.
type channel struct {
	mu sync.Mutex
	// gen is the cache generation in which tail was learned from the
	// server; 0 means never. A tail of an older generation is not trusted.
	gen  uint64
	tail tail
	dead bool // evicted: a holder of a stale pointer looks it up again
	// expiry marks this node's stored messages for purging once their
	// HistoryTTL has passed.
	expiry expiryMarks

	lastUse time.Time // guarded by the shard's mutex
}

type channelShard struct {
	mu sync.Mutex
	m  map[string]*channel
}

// channelCache holds the cached tails. Lock order: channelShard.mu →
// channel.mu.
type channelCache struct {
	seed   maphash.Seed
	gen    atomic.Uint64
	shards [numChannelShards]channelShard
}

func (cc *channelCache) init() {
	cc.seed = maphash.MakeSeed()
	cc.gen.Store(1)
	for i := range cc.shards {
		cc.shards[i].m = make(map[string]*channel)
	}
}

// lock returns name's cached state with its mutex held.
func (cc *channelCache) lock(name string) *channel {
	s := &cc.shards[maphash.String(cc.seed, name)%numChannelShards]
	for {
		s.mu.Lock()
		c := s.m[name]
		if c == nil {
			c = &channel{}
			s.m[name] = c
		}
		c.lastUse = time.Now()
		s.mu.Unlock()
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock()
	}
}

// known reports whether c's tail can be trusted. Caller must hold c.mu.
func (cc *channelCache) known(c *channel) bool {
	return c.gen == cc.gen.Load()
}

// learn records t as c's tail. Caller must hold c.mu.
func (cc *channelCache) learn(c *channel, t tail) {
	c.tail, c.gen = t, cc.gen.Load()
}

// unlearn marks c's tail as not to be trusted. Caller must hold c.mu.
func (c *channel) unlearn() {
	c.gen = 0
}

// evictIdle drops the tails of channels unused since idleChannelTTL before
// now. A channel whose mutex is held is in use and stays.
func (cc *channelCache) evictIdle(now time.Time) {
	for i := range cc.shards {
		s := &cc.shards[i]
		s.mu.Lock()
		for name, c := range s.m {
			// A channel whose mutex is held is in use; TryLock also keeps
			// a busy channel from stalling the whole shard.
			if now.Sub(c.lastUse) >= idleChannelTTL && c.mu.TryLock() {
				c.dead = true
				delete(s.m, name)
				c.mu.Unlock()
			}
		}
		s.mu.Unlock()
	}
}

// forget distrusts every cached tail, for after a reconnect: the server
// may have restarted without its data, and a stale tail must not lend its
// epoch to a new history.
func (cc *channelCache) forget() {
	cc.gen.Add(1)
}
