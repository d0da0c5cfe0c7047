package memory

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
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
// top-len(hist)+1 .. top; expired ones are filtered on read and trimmed from
// the front.
//
// Publications are kept as records (engine.AppendPublicationRecord) back to
// back in arena, indexed by hist. Neither holds pointers, so however many
// publications a channel keeps, the collector marks two objects for them
// and scans neither. Bytes once written to an arena's backing array are
// never written again: the front is dropped by reslicing, and a full array
// is replaced by a new one holding only the live part, so anything still
// aliasing an old record (a delivered publication's data) stays valid.
type channel struct {
	mu    sync.Mutex
	epoch string
	top   uint64
	hist  []histEntry
	arena []byte
	// base is the logical position of arena[0]. Positions count every byte
	// ever appended to the channel's records, so they survive reslicing and
	// reallocation of arena.
	base uint64
	// arenaCap is the size of arena's backing array, dropped front included.
	arenaCap int
	idem     map[string]idempotent
	lastUse  int64 // Unix ms
	// dead is set when the sweep removes the channel from its shard; a caller
	// holding a stale pointer must look the channel up again.
	dead bool
}

// histEntry locates one record: it runs from start to the next entry's
// start, or to the arena's end for the newest.
type histEntry struct {
	start   uint64 // logical position, see channel.base
	expires int64  // Unix ms; 0 never
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
			if len(c.hist) == 0 && len(c.idem) == 0 && now-c.lastUse >= idleChannelTTL.Milliseconds() {
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
	for n < len(c.hist) && c.hist[n].expires != 0 && c.hist[n].expires <= now {
		n++
	}
	c.drop(n)
}

// drop removes the n oldest publications. Caller must hold c.mu.
func (c *channel) drop(n int) {
	switch {
	case n == 0:
	case n == len(c.hist):
		c.base += uint64(len(c.arena))
		c.hist, c.arena, c.arenaCap = nil, nil, 0
	default:
		c.hist = c.hist[n:]
		start := c.hist[0].start
		c.arena = c.arena[start-c.base:]
		c.base = start
		if 4*len(c.arena) < c.arenaCap {
			// Most of the backing array is dropped front that the next
			// reallocation would be far off to free (a shrunken HistorySize,
			// a run of expiries): copy the live part out now.
			c.arena = bytes.Clone(c.arena)
			c.arenaCap = cap(c.arena)
			c.hist = slices.Clone(c.hist)
		}
	}
}

// store appends pub's record, expiring at expires, and returns the record's
// copy of pub.Data (see engine.AppendPublicationRecord). Caller must hold c.mu.
func (c *channel) store(pub *protocol.Publication, expires int64) []byte {
	n := len(c.arena)
	if len(c.hist) == cap(c.hist) {
		// Doubled for the reason AppendPublicationRecord doubles the arena.
		c.hist = slices.Grow(c.hist, len(c.hist)+1)
	}
	c.hist = append(c.hist, histEntry{start: c.base + uint64(n), expires: expires})
	had := cap(c.arena)
	var data []byte
	c.arena, data = engine.AppendPublicationRecord(c.arena, pub)
	if cap(c.arena) != had {
		c.arenaCap = cap(c.arena)
	}
	return data
}

// record returns the i-th retained record. Caller must hold c.mu.
func (c *channel) record(i int) []byte {
	end := c.base + uint64(len(c.arena))
	if i+1 < len(c.hist) {
		end = c.hist[i+1].start
	}
	return c.arena[c.hist[i].start-c.base : end-c.base]
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
		Data:    data, // the caller's until stored or cloned below
		Tags:    maps.Clone(opts.Tags),
		Time:    now,
	}
	if opts.Info != nil {
		info := *opts.Info
		pub.Info = &info
	}
	if opts.HistorySize <= 0 && opts.IdempotencyKey == "" {
		pub.Data = bytes.Clone(data)
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
		// The stored copy is never overwritten, so the delivered
		// publication can share it instead of cloning data again.
		pub.Data = c.store(pub, expires)
		c.drop(max(len(c.hist)-opts.HistorySize, 0))
		c.trimExpired(now)
		pos = c.position()
	} else {
		pub.Data = bytes.Clone(data)
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
	if q.Limit == 0 || len(c.hist) == 0 {
		return res, nil
	}

	// Offsets are contiguous, so a position maps to an index directly.
	first := c.top - uint64(len(c.hist)) + 1
	lo, hi := 0, len(c.hist) // index range [lo, hi) to consider
	if q.Since != nil {
		if q.Reverse {
			if q.Since.Offset <= first {
				return res, nil
			}
			hi = int(min(q.Since.Offset-first, uint64(len(c.hist))))
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
		if exp := c.hist[j].expires; exp != 0 && exp <= now {
			continue
		}
		pub, err := engine.DecodePublicationRecord(c.record(j))
		if err != nil {
			return engine.HistoryResult{}, fmt.Errorf("memory: history of %s: %w", channelName, err)
		}
		pub.Channel, pub.Offset = channelName, first+uint64(j)
		out = append(out, pub)
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
	c.drop(len(c.hist))
	c.mu.Unlock()
	return nil
}
