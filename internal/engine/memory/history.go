package memory

import (
	"bytes"
	"context"
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// numChannelShards spreads channels over independent locks so publishers to
// different channels rarely contend.
const numChannelShards = 64

// defaultIdempotencyTTL applies when a publish sets IdempotencyKey but no
// IdempotencyTTL: a key the caller bothered to send should protect a retry.
const defaultIdempotencyTTL = time.Minute

// idleChannelTTL is how long a channel holding no publications and no
// idempotency keys is kept after its last use. Forgetting it is safe: its
// next use starts a new epoch, so old positions read as unrecoverable
// instead of being resumed wrongly.
const idleChannelTTL = 10 * time.Minute

// channel is one channel's stream. Its publications have contiguous offsets
// top-len(pubs)+1 .. top; expired ones are filtered on read and trimmed from
// the front.
type channel struct {
	mu      sync.Mutex
	epoch   string
	top     uint64
	pubs    []stored
	idem    map[string]idempotent
	lastUse int64 // Unix ms
	// dead is set when the sweep removes the channel from its shard; a caller
	// holding a stale pointer must look the channel up again.
	dead bool
}

type stored struct {
	pub     *protocol.Publication
	expires int64 // Unix ms; 0 never
}

type idempotent struct {
	pos     protocol.StreamPosition
	expires int64 // Unix ms
}

type channelShard struct {
	mu sync.Mutex
	m  map[string]*channel
}

// channelMap holds every channel with state. Lock order: channelShard.mu →
// channel.mu.
type channelMap struct {
	seed   maphash.Seed
	shards [numChannelShards]channelShard
}

func (cm *channelMap) init(seed maphash.Seed) {
	cm.seed = seed
	for i := range cm.shards {
		cm.shards[i].m = make(map[string]*channel)
	}
}

// lock returns name's channel, created with a new epoch on first use, with
// its mutex held.
func (cm *channelMap) lock(name string, now int64) *channel {
	s := &cm.shards[maphash.String(cm.seed, name)%numChannelShards]
	for {
		s.mu.Lock()
		c := s.m[name]
		if c == nil {
			c = &channel{epoch: engine.NewEpoch()}
			s.m[name] = c
		}
		s.mu.Unlock()
		c.mu.Lock()
		if !c.dead {
			c.lastUse = now
			return c
		}
		c.mu.Unlock()
	}
}

// sweep drops expired publications and idempotency keys, and forgets channels
// that hold nothing and have been idle for idleChannelTTL.
func (cm *channelMap) sweep(t time.Time) {
	now := t.UnixMilli()
	for i := range cm.shards {
		s := &cm.shards[i]
		s.mu.Lock()
		for name, c := range s.m {
			c.mu.Lock()
			c.trimExpired(now)
			for k, r := range c.idem {
				if r.expires <= now {
					delete(c.idem, k)
				}
			}
			if len(c.pubs) == 0 && len(c.idem) == 0 && now-c.lastUse >= idleChannelTTL.Milliseconds() {
				c.dead = true
				delete(s.m, name)
			}
			c.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

// trimExpired drops expired publications from the front. One that outlives
// an older neighbour (a longer HistoryTTL on an earlier publish) holds later
// expired ones in memory until it goes; reads skip them meanwhile.
// Caller must hold c.mu.
func (c *channel) trimExpired(now int64) {
	n := 0
	for n < len(c.pubs) && c.pubs[n].expires != 0 && c.pubs[n].expires <= now {
		n++
	}
	c.drop(n)
}

// drop removes the n oldest publications. Caller must hold c.mu.
func (c *channel) drop(n int) {
	if n == 0 {
		return
	}
	clear(c.pubs[:n]) // the backing array outlives the slice; let them go
	c.pubs = c.pubs[n:]
	if len(c.pubs) == 0 {
		c.pubs = nil
	}
}

func (c *channel) position() protocol.StreamPosition {
	return protocol.StreamPosition{Epoch: c.epoch, Offset: c.top}
}

// Publish stores data (when opts.HistorySize > 0) and delivers it. The
// publication is in history when Publish returns; delivery to the handler
// follows asynchronously, in offset order.
func (e *Engine) Publish(ctx context.Context, channelName string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	if err := e.check(ctx); err != nil {
		return protocol.StreamPosition{}, err
	}
	now := time.Now().UnixMilli()
	pub := &protocol.Publication{
		Channel: channelName,
		Data:    bytes.Clone(data),
		Tags:    maps.Clone(opts.Tags),
		Time:    now,
	}
	if opts.Info != nil {
		info := *opts.Info
		pub.Info = &info
	}
	if opts.HistorySize <= 0 && opts.IdempotencyKey == "" {
		e.delivery.enqueue(event{kind: evPublication, channel: channelName, pub: pub})
		return protocol.StreamPosition{}, nil
	}

	c := e.channels.lock(channelName, now)
	defer c.mu.Unlock()
	if opts.IdempotencyKey != "" {
		if r, ok := c.idem[opts.IdempotencyKey]; ok && r.expires > now {
			return r.pos, nil
		}
	}
	var pos protocol.StreamPosition
	if opts.HistorySize > 0 {
		c.top++
		pub.Offset = c.top
		var expires int64
		if opts.HistoryTTL > 0 {
			expires = now + opts.HistoryTTL.Milliseconds()
		}
		c.pubs = append(c.pubs, stored{pub: pub, expires: expires})
		c.drop(max(len(c.pubs)-opts.HistorySize, 0))
		c.trimExpired(now)
		pos = c.position()
	}
	if opts.IdempotencyKey != "" {
		ttl := opts.IdempotencyTTL
		if ttl <= 0 {
			ttl = defaultIdempotencyTTL
		}
		if c.idem == nil {
			c.idem = make(map[string]idempotent)
		}
		c.idem[opts.IdempotencyKey] = idempotent{pos: pos, expires: now + ttl.Milliseconds()}
	}
	// Enqueued under c.mu, so deliveries follow offset order.
	e.delivery.enqueue(event{kind: evPublication, channel: channelName, pub: pub, epoch: pos.Epoch})
	return pos, nil
}

// History reads the channel's retained, unexpired publications and its
// position, atomically. A channel's first use (even a read) creates its epoch.
func (e *Engine) History(ctx context.Context, channelName string, q engine.HistoryQuery) (engine.HistoryResult, error) {
	if err := e.check(ctx); err != nil {
		return engine.HistoryResult{}, err
	}
	now := time.Now().UnixMilli()
	c := e.channels.lock(channelName, now)
	defer c.mu.Unlock()
	res := engine.HistoryResult{Position: c.position()}
	if q.Limit == 0 || len(c.pubs) == 0 {
		return res, nil
	}

	// Offsets are contiguous, so a position maps to an index directly.
	first := c.top - uint64(len(c.pubs)) + 1
	lo, hi := 0, len(c.pubs) // index range [lo, hi) to consider
	if q.Since != nil {
		if q.Reverse {
			if q.Since.Offset <= first {
				return res, nil
			}
			hi = int(min(q.Since.Offset-first, uint64(len(c.pubs))))
		} else {
			if q.Since.Offset >= c.top {
				return res, nil
			}
			lo = int(max(q.Since.Offset+1, first) - first)
		}
	}
	limit := q.Limit
	if limit < 0 {
		limit = hi - lo
	}
	out := make([]*protocol.Publication, 0, min(limit, hi-lo))
	for i := range hi - lo {
		if len(out) == limit {
			break
		}
		j := lo + i
		if q.Reverse {
			j = hi - 1 - i
		}
		if s := c.pubs[j]; s.expires == 0 || s.expires > now {
			out = append(out, s.pub)
		}
	}
	res.Publications = out
	return res, nil
}

// RemoveHistory deletes the channel's publications. Its offset and epoch
// stay, so positions remain comparable.
func (e *Engine) RemoveHistory(ctx context.Context, channelName string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	c := e.channels.lock(channelName, time.Now().UnixMilli())
	c.drop(len(c.pubs))
	c.mu.Unlock()
	return nil
}
