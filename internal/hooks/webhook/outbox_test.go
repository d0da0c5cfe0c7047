package webhook

import (
	"log/slog"
	"testing"
)

func appendValues(t *testing.T, o *outbox, values ...string) (refused int) {
	t.Helper()
	b := o.begin()
	for _, v := range values {
		if !b.fits(len(v)) {
			refused++
			continue
		}
		b.put([]byte(v))
	}
	if err := b.commit(); err != nil {
		t.Fatal(err)
	}
	return refused
}

func all(t *testing.T, o *outbox, from uint64) ([]string, uint64) {
	t.Helper()
	es, after, err := o.read(from, 1000, 1<<20, func([]byte) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.value))
	}
	return out, after
}

// The outbox keeps its entries, cursors and id across a reopen, holds no
// more than its bounds, and trims what every endpoint has.
func TestOutboxBoundsTrimAndReopen(t *testing.T) {
	dir := t.TempDir()
	o, err := openOutbox(dir, 3, 1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if refused := appendValues(t, o, "a", "b", "c", "d"); refused != 1 || o.depth() != 3 {
		t.Fatalf("refused %d, depth %d", refused, o.depth())
	}
	got, after := all(t, o, 0)
	if len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("read %q", got)
	}
	if err := o.setCursor("http://x", after-1); err != nil {
		t.Fatal(err)
	}
	if err := o.trim(after - 1); err != nil {
		t.Fatal(err)
	}
	id := o.id
	if err := o.close(); err != nil {
		t.Fatal(err)
	}

	o, err = openOutbox(dir, 3, 1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	c, err := o.cursor("http://x")
	if err != nil || c != after-1 || o.id != id {
		t.Fatalf("cursor %d (%v), id %q was %q", c, err, o.id, id)
	}
	got, _ = all(t, o, c)
	if len(got) != 1 || got[0] != "c" || o.depth() != 1 {
		t.Fatalf("after reopen: %q, depth %d", got, o.depth())
	}
	if refused := appendValues(t, o, "e", "f", "g"); refused != 1 {
		t.Fatalf("refused %d", refused)
	}
	if err := o.forget(map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if c, _ := o.cursor("http://x"); c != 0 {
		t.Errorf("forgotten cursor still %d", c)
	}
}

// A byte bound refuses what would exceed it but always reads one entry
// even when it alone is larger than a batch.
func TestOutboxByteBounds(t *testing.T) {
	o, err := openOutbox("", 100, 10, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if refused := appendValues(t, o, "12345", "12345", "1"); refused != 1 {
		t.Fatalf("refused %d", refused)
	}
	es, after, err := o.read(0, 10, 3, func([]byte) bool { return true })
	if err != nil || len(es) != 1 || after != es[0].seq+1 {
		t.Fatalf("read %v after %d: %v", es, after, err)
	}
}
