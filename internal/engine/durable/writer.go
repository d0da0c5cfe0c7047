package durable

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// pointDeleteMax is the widest offset range deleted key by key; wider ones
// take one range tombstone instead of many point tombstones.
const pointDeleteMax = 16

type opKind uint8

const (
	opPublish  opKind = iota // store pub, assigning its offset
	opRemove                 // RemoveHistory
	opEnsure                 // persist a channel's epoch before a reader reports it
	opTrim                   // the sweep: drop publications up to upTo
	opDropIdem               // the sweep: drop idempotency records if still expired
	opEvict                  // the sweep: forget idle channel states
)

// op is one request to the writer. Its results are valid once done is closed.
type op struct {
	kind    opKind
	channel string
	pub     *protocol.Publication // opPublish, without offset and time
	opts    engine.PublishOptions // opPublish
	upTo    uint64                // opTrim
	keys    [][]byte              // opDropIdem: records to drop if expired by sweptAt
	sweptAt int64                 // opDropIdem: Unix ms

	pos   protocol.StreamPosition
	state *channelState
	dup   bool // opPublish answered from an idempotency record
	err   error
	done  chan struct{}
}

// writer is the single goroutine that changes the store. Doing every write
// in one place is the group commit: it takes all pending ops, assigns
// offsets, writes one batch, syncs it once, then acknowledges and delivers
// them in order. Concurrent publishers therefore share one fsync, and offsets
// need no lock beyond the queue.
//
// Mutations of a Pebble batch can fail only for indexed batches, which the
// writer does not use, so their errors are ignored.
type writer struct {
	db      *pebble.DB
	cache   *channelCache
	deliver func(pub *protocol.Publication, epoch string)

	mu      sync.Mutex
	cond    sync.Cond
	pending []*op
	closed  bool
	exited  chan struct{}

	// Owned by the writer goroutine.
	failed  error                              // a failed commit leaves memory ahead of disk: stop writing
	touched []*channelState                    // states dirtied in the batch being built
	idem    map[string]protocol.StreamPosition // idempotency records written in the batch
}

func newWriter(db *pebble.DB, cache *channelCache, deliver func(*protocol.Publication, string)) *writer {
	w := &writer{
		db: db, cache: cache, deliver: deliver,
		exited: make(chan struct{}),
		idem:   make(map[string]protocol.StreamPosition),
	}
	w.cond.L = &w.mu
	return w
}

// do submits o and waits for its result. When ctx ends first, o may still be
// carried out.
func (w *writer) do(ctx context.Context, o *op) error {
	if err := w.submit(o); err != nil {
		return err
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// doAll submits ops together, so they land in one batch, and waits for all
// of them. It returns the first op's error.
func (w *writer) doAll(ops ...*op) error {
	if err := w.submit(ops...); err != nil {
		return err
	}
	var first error
	for _, o := range ops {
		<-o.done
		if first == nil {
			first = o.err
		}
	}
	return first
}

func (w *writer) submit(ops ...*op) error {
	for _, o := range ops {
		o.done = make(chan struct{})
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return engine.ErrClosed
	}
	w.pending = append(w.pending, ops...)
	w.mu.Unlock()
	w.cond.Signal()
	return nil
}

// close makes later submissions fail and waits until every op already
// submitted has been committed and acknowledged.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Signal()
	<-w.exited
}

func (w *writer) run() {
	defer close(w.exited)
	var batch []*op
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		batch, w.pending = w.pending, batch[:0]
		w.mu.Unlock()

		w.commit(batch)
		clear(batch)
	}
}

// commit carries out ops as one synced batch, then acknowledges them and
// delivers the new publications, in submission order (which is offset order
// within each channel).
func (w *writer) commit(ops []*op) {
	if w.failed != nil {
		w.fail(ops)
		return
	}
	now := time.Now().UnixMilli()
	b := w.db.NewBatch()
	defer b.Close()
	evict := false
	for _, o := range ops {
		if o.kind == opEvict {
			evict = true
			continue
		}
		o.err = w.apply(b, o, now)
	}
	for _, st := range w.touched {
		_ = b.Set(metaKey(st.name), encodeMeta(meta{epoch: st.epoch, top: st.top, low: st.low}), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		w.failed = fmt.Errorf("durable: commit: %w", err)
		w.fail(ops)
		return
	}

	for _, st := range w.touched {
		st.markSynced()
	}
	clear(w.touched)
	w.touched = w.touched[:0]
	clear(w.idem)
	if evict {
		w.cache.evictIdle(now - idleStateTTL.Milliseconds())
	}
	for _, o := range ops {
		close(o.done)
	}
	for _, o := range ops {
		if o.kind == opPublish && o.err == nil && !o.dup {
			w.deliver(o.pub, o.pos.Epoch)
		}
	}
}

// fail answers ops with the writer's failure. After a failed commit the
// writer's channel states are ahead of the disk, so it refuses further work;
// reopening the store recovers the synced state.
func (w *writer) fail(ops []*op) {
	for _, o := range ops {
		o.err = w.failed
		close(o.done)
	}
}

// apply adds o's writes to b and updates the writer's channel state.
func (w *writer) apply(b *pebble.Batch, o *op, now int64) error {
	if o.kind == opDropIdem {
		return w.dropIdempotent(b, o.keys, o.sweptAt)
	}
	st, err := w.cache.lookup(o.channel, true, now)
	if err != nil {
		return err
	}
	o.state = st
	switch o.kind {
	case opPublish:
		return w.publish(b, st, o, now)
	case opRemove:
		w.deleteOffsets(b, st, st.top+1)
	case opEnsure:
		if synced, _, _ := st.view(); !synced {
			w.touch(st)
		}
	case opTrim:
		w.deleteOffsets(b, st, min(o.upTo, st.top)+1)
	}
	return nil
}

func (w *writer) publish(b *pebble.Batch, st *channelState, o *op, now int64) error {
	var ik []byte
	if o.opts.IdempotencyKey != "" {
		ik = idemKey(st.name, o.opts.IdempotencyKey)
		if pos, ok, err := w.lookupIdempotent(st, ik, now); err != nil || ok {
			o.pos, o.dup = pos, ok
			return err
		}
	}
	w.touch(st)
	st.top++
	o.pub.Offset, o.pub.Time = st.top, now
	o.pos = protocol.StreamPosition{Epoch: st.epoch, Offset: st.top}
	var expires int64
	if o.opts.HistoryTTL > 0 {
		expires = now + o.opts.HistoryTTL.Milliseconds()
	}
	_ = b.Set(pubKey(st.name, st.top), encodePublication(o.pub, expires), nil)
	if size := uint64(o.opts.HistorySize); st.top >= size {
		w.deleteOffsets(b, st, st.top-size+1)
	}
	if ik != nil {
		ttl := o.opts.IdempotencyTTL
		if ttl <= 0 {
			ttl = defaultIdempotencyTTL
		}
		rec := idempotent{offset: st.top, expires: now + ttl.Milliseconds()}
		_ = b.Set(ik, encodeIdempotent(rec), nil)
		w.idem[string(ik)] = o.pos
	}
	return nil
}

// lookupIdempotent finds an unexpired record of key ik, in the batch being
// built or on disk. Everything readable on disk is synced: the previous
// batch's sync completed before this one began.
func (w *writer) lookupIdempotent(st *channelState, ik []byte, now int64) (protocol.StreamPosition, bool, error) {
	if pos, ok := w.idem[string(ik)]; ok {
		return pos, true, nil
	}
	v, closer, err := w.db.Get(ik)
	if errors.Is(err, pebble.ErrNotFound) {
		return protocol.StreamPosition{}, false, nil
	}
	if err != nil {
		return protocol.StreamPosition{}, false, fmt.Errorf("durable: read idempotency key: %w", err)
	}
	rec, err := decodeIdempotent(v)
	closer.Close()
	if err != nil || rec.expires <= now {
		return protocol.StreamPosition{}, false, err
	}
	return protocol.StreamPosition{Epoch: st.epoch, Offset: rec.offset}, true, nil
}

// deleteOffsets deletes the channel's publications below newLow.
func (w *writer) deleteOffsets(b *pebble.Batch, st *channelState, newLow uint64) {
	if newLow <= st.low {
		return
	}
	w.touch(st)
	if newLow-st.low <= pointDeleteMax {
		for off := st.low; off < newLow; off++ {
			_ = b.Delete(pubKey(st.name, off), nil)
		}
	} else {
		_ = b.DeleteRange(pubKey(st.name, st.low), pubKey(st.name, newLow), nil)
	}
	st.low = newLow
}

// dropIdempotent deletes the records among keys that are still expired at
// now: a key may have been used again since the sweep read it.
func (w *writer) dropIdempotent(b *pebble.Batch, keys [][]byte, now int64) error {
	for _, k := range keys {
		if _, ok := w.idem[string(k)]; ok {
			continue
		}
		v, closer, err := w.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("durable: read idempotency key: %w", err)
		}
		rec, derr := decodeIdempotent(v)
		closer.Close()
		if derr != nil || rec.expires <= now {
			_ = b.Delete(k, nil)
		}
	}
	return nil
}

// touch marks st as changed in the batch being built.
func (w *writer) touch(st *channelState) {
	if !st.dirty {
		st.dirty = true
		w.touched = append(w.touched, st)
	}
}
