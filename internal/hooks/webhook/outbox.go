package webhook

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// outbox is the queue of events between the node and the endpoints: an
// embedded Pebble store whose entries are keyed by a sequence number, with
// one cursor per endpoint naming the next sequence it has not acknowledged.
// An entry is deleted once every endpoint's cursor is past it. Without a
// directory the store lives in memory and is lost on exit.
//
// Keys: 'e' + big-endian sequence → entry; 'c' + endpoint URL → cursor;
// "id" → the outbox's id, which prefixes every event id so ids stay unique
// across nodes and stable across restarts.
type outbox struct {
	db   *pebble.DB
	lock *pebble.Lock
	id   string
	// maxEvents and maxBytes bound the entries held.
	maxEvents int
	maxBytes  int64

	mu sync.Mutex
	// first is the oldest sequence held, next the one the next append gets;
	// sizes[i] is the size of entry first+i.
	first, next uint64
	sizes       []int
	bytes       int64
}

// entry is one stored event.
type entry struct {
	seq   uint64
	value []byte
}

var idKey = []byte("id")

func entryKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = 'e'
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func cursorKey(url string) []byte { return append([]byte{'c'}, url...) }

// openOutbox opens (creating it if needed) the outbox in dir, or one in
// memory when dir is empty.
func openOutbox(dir string, maxEvents int, maxBytes int64, log *slog.Logger) (*outbox, error) {
	opts := &pebble.Options{Logger: pebbleLogger{log}}
	var lock *pebble.Lock
	if dir == "" {
		opts.FS = vfs.NewMem()
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("webhook: outbox: %w", err)
		}
		// A pebble.Open that fails on a held lock leaves a goroutine
		// behind, so the lock comes first.
		var err error
		if lock, err = pebble.LockDirectory(dir, vfs.Default); err != nil {
			return nil, fmt.Errorf("webhook: outbox %s in use by another process? %w", dir, err)
		}
		opts.Lock = lock
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("webhook: outbox %s: %w", dir, err), closeLock(lock))
	}
	o := &outbox{db: db, lock: lock, maxEvents: maxEvents, maxBytes: maxBytes}
	if err := o.load(); err != nil {
		return nil, errors.Join(err, o.close())
	}
	return o, nil
}

func closeLock(l *pebble.Lock) error {
	if l == nil {
		return nil
	}
	return l.Close()
}

// load reads the outbox's id and the sizes of the entries it holds.
func (o *outbox) load() error {
	v, closer, err := o.db.Get(idKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		o.id = newID()
		if err := o.db.Set(idKey, []byte(o.id), pebble.Sync); err != nil {
			return fmt.Errorf("webhook: outbox: %w", err)
		}
	case err != nil:
		return fmt.Errorf("webhook: outbox: %w", err)
	default:
		o.id = string(v)
		_ = closer.Close()
	}
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'e'}, UpperBound: []byte{'f'}})
	if err != nil {
		return fmt.Errorf("webhook: outbox: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[1:])
		if len(o.sizes) == 0 {
			o.first = seq
		}
		o.sizes = append(o.sizes, len(it.Value()))
		o.bytes += int64(len(it.Value()))
		o.next = seq + 1
	}
	if o.next == 0 {
		// Sequence 0 would read as "no cursor yet".
		o.first, o.next = 1, 1
	}
	return it.Error()
}

// depth is the number of entries held.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sizes)
}

// room reports whether n more entries of size bytes fit the bounds. Caller
// must hold o.mu.
func (o *outbox) roomLocked(n int, size int64) bool {
	return len(o.sizes)+n <= o.maxEvents && o.bytes+size <= o.maxBytes
}

// appendBatch is a set of entries being added; nothing counts as queued
// until commit has synced it.
type appendBatch struct {
	o     *outbox
	b     *pebble.Batch
	seq   uint64
	sizes []int
	bytes int64
}

// begin starts a batch of appends. Only one batch may be open at a time
// (the writer's).
func (o *outbox) begin() *appendBatch {
	o.mu.Lock()
	next := o.next
	o.mu.Unlock()
	return &appendBatch{o: o, b: o.db.NewBatch(), seq: next}
}

// fits reports whether one more entry of size bytes fits the bounds along
// with what the batch already holds.
func (a *appendBatch) fits(size int) bool {
	a.o.mu.Lock()
	defer a.o.mu.Unlock()
	return a.o.roomLocked(len(a.sizes)+1, a.bytes+int64(size))
}

// put appends an entry with sequence a.seq.
func (a *appendBatch) put(v []byte) {
	// A batch's Set fails only on a batch already committed.
	_ = a.b.Set(entryKey(a.seq), v, nil)
	a.seq++
	a.sizes = append(a.sizes, len(v))
	a.bytes += int64(len(v))
}

// commit syncs the batch to disk and only then counts its entries.
func (a *appendBatch) commit() error {
	defer a.b.Close()
	if len(a.sizes) == 0 {
		return nil
	}
	if err := a.b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("webhook: outbox write: %w", err)
	}
	o := a.o
	o.mu.Lock()
	o.sizes = append(o.sizes, a.sizes...)
	o.bytes += a.bytes
	o.next = a.seq
	o.mu.Unlock()
	return nil
}

// read returns entries from sequence from on, stopping before maxN entries
// or maxBytes of values (always returning at least one entry when there is
// one), and the sequence after the last entry examined. keep filters the
// entries; skipped ones advance the returned sequence all the same.
func (o *outbox) read(from uint64, maxN int, maxBytes int, keep func([]byte) bool) ([]entry, uint64, error) {
	o.mu.Lock()
	from = max(from, o.first)
	next := o.next
	o.mu.Unlock()
	if from >= next {
		return nil, from, nil
	}
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(from), UpperBound: entryKey(next)})
	if err != nil {
		return nil, from, err
	}
	defer it.Close()
	var out []entry
	size, after := 0, from
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[1:])
		v := it.Value()
		if !keep(v) {
			after = seq + 1
			continue
		}
		if len(out) >= maxN || len(out) > 0 && size+len(v) > maxBytes {
			break
		}
		out = append(out, entry{seq: seq, value: append([]byte(nil), v...)})
		size += len(v)
		after = seq + 1
	}
	return out, after, it.Error()
}

// cursor returns the endpoint's next sequence, or 0 if it has none.
func (o *outbox) cursor(url string) (uint64, error) {
	v, closer, err := o.db.Get(cursorKey(url))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return binary.BigEndian.Uint64(v), nil
}

// setCursor records the endpoint's progress. It is not synced: after a
// crash the endpoint gets again what it acknowledged last, which at least
// once allows.
func (o *outbox) setCursor(url string, seq uint64) error {
	return o.db.Set(cursorKey(url), binary.BigEndian.AppendUint64(nil, seq), pebble.NoSync)
}

// forget removes the cursors of endpoints not in keep, so an endpoint
// dropped from the configuration does not hold entries forever.
func (o *outbox) forget(keep map[string]bool) error {
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'c'}, UpperBound: []byte{'d'}})
	if err != nil {
		return err
	}
	var stale [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		if !keep[string(it.Key()[1:])] {
			stale = append(stale, append([]byte(nil), it.Key()...))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	for _, k := range stale {
		if err := o.db.Delete(k, pebble.NoSync); err != nil {
			return err
		}
	}
	return nil
}

// trim deletes the entries before seq, which every endpoint has.
func (o *outbox) trim(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq = min(seq, o.next)
	if seq <= o.first {
		return nil
	}
	if err := o.db.DeleteRange(entryKey(o.first), entryKey(seq), pebble.NoSync); err != nil {
		return err
	}
	n := int(seq - o.first)
	for _, s := range o.sizes[:n] {
		o.bytes -= int64(s)
	}
	o.sizes = append(o.sizes[:0], o.sizes[n:]...)
	o.first = seq
	return nil
}

// close flushes and closes the store.
func (o *outbox) close() error {
	err := o.db.Flush()
	if errors.Is(err, pebble.ErrReadOnly) {
		err = nil
	}
	return errors.Join(err, o.db.Close(), closeLock(o.lock))
}

// newID returns a random 12-character id.
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [12]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}

// pebbleLogger routes Pebble's logging to slog; its info messages are
// debug detail here.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "webhook-outbox")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "webhook-outbox")
}

// Fatalf is called by Pebble on unrecoverable store errors and must not
// return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "webhook-outbox")
	os.Exit(1)
}
