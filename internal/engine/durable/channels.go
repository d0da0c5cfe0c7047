package durable

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldrt/herald/internal/engine"
)

const numCacheShards = 64

// channelState caches one channel's meta. Its epoch never changes. The
// writer goroutine alone touches top, low and dirty; readers see the values
// of the last synced batch through view, because Pebble makes a batch
// readable before its WAL sync completes and a reader must not see (or hand
// to a client) a position a crash could still take back.
type channelState struct {
	name  string
	epoch string

	// Owned by the writer goroutine.
	top, low uint64
	dirty    bool // changed in the batch being built

	mu        sync.Mutex
	synced    bool // the meta is on disk
	syncedTop uint64
	syncedLow uint64

	lastUse atomic.Int64 // Unix ms; idle states are evicted
}

// view returns the channel's state as of the last synced batch.
func (st *channelState) view() (synced bool, top, low uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.synced, st.syncedTop, st.syncedLow
}

// markSynced publishes the writer's values to readers once they are on disk.
// Only the writer goroutine calls it.
func (st *channelState) markSynced() {
	st.mu.Lock()
	st.synced, st.syncedTop, st.syncedLow = true, st.top, st.low
	st.mu.Unlock()
	st.dirty = false
}

// channelCache holds the states of recently used channels. A state is in the
// cache whenever the writer has changes for it in flight, so a state loaded
// from disk on a miss is always up to date.
type channelCache struct {
	db     *pebble.DB
	seed   maphash.Seed
	shards [numCacheShards]struct {
		mu sync.Mutex
		m  map[string]*channelState
	}
}

func (c *channelCache) init(db *pebble.DB) {
	c.db, c.seed = db, maphash.MakeSeed()
	for i := range c.shards {
		c.shards[i].m = make(map[string]*channelState)
	}
}

// lookup returns the channel's state, loading it from disk on a miss. A
// channel with no meta on disk yet gets a state with a new epoch when create
// is set (only the writer creates, so one channel never gets two epochs) and
// nil otherwise.
func (c *channelCache) lookup(name string, create bool, now int64) (*channelState, error) {
	s := &c.shards[maphash.String(c.seed, name)%numCacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[name]
	if st == nil {
		// Loading under the shard lock keeps a concurrent lookup from
		// installing a second state for the same channel.
		v, closer, err := c.db.Get(metaKey(name))
		switch {
		case err == nil:
			m, derr := decodeMeta(v)
			closer.Close()
			if derr != nil {
				return nil, fmt.Errorf("durable: channel %s: %w", name, derr)
			}
			st = &channelState{name: name, epoch: m.epoch, top: m.top, low: m.low,
				synced: true, syncedTop: m.top, syncedLow: m.low}
		case errors.Is(err, pebble.ErrNotFound):
			if !create {
				return nil, nil
			}
			st = &channelState{name: name, epoch: engine.NewEpoch(), low: 1}
		default:
			return nil, fmt.Errorf("durable: read channel %s: %w", name, err)
		}
		s.m[name] = st
	}
	st.lastUse.Store(now)
	return st, nil
}

// evictIdle drops states unused since before, which are all synced: only the
// writer calls it, between batches.
func (c *channelCache) evictIdle(before int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for name, st := range s.m {
			if st.lastUse.Load() < before {
				delete(s.m, name)
			}
		}
		s.mu.Unlock()
	}
}
