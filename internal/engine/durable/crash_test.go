package durable

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// ackLog records acknowledged publishes, in the order their acks returned.
type ackLog struct {
	mu      sync.Mutex
	grown   sync.Cond
	acks    []acked
	stopped bool
}

type acked struct {
	channel string
	pos     protocol.StreamPosition
	data    string
}

func (l *ackLog) add(a acked) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
	l.grown.Broadcast()
}

// stop wakes waiters for good, once no more acks will come.
func (l *ackLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.grown.Broadcast()
}

// waitFor blocks until at least n acks are in or stop was called, and
// returns the acks so far.
func (l *ackLog) waitFor(n int) []acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.acks) < n && !l.stopped {
		l.grown.Wait()
	}
	return append([]acked(nil), l.acks...)
}

// TestAckedPublishesSurviveCrash runs the store on a file system that keeps
// what was written apart from what was synced, and takes crash images of it
// (only the synced state) while publishers run and after their last ack,
// without closing the engine first: every publish acknowledged before an
// image was taken must be in that image, with its offset, data and epoch.
// A kill -9 cannot show this, as the kernel keeps unsynced writes of a
// killed process.
func TestAckedPublishesSurviveCrash(t *testing.T) {
	const dir = "/herald-data"
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	fs := vfs.NewCrashableMem()
	e, err := Open(ctx, Config{Dir: dir, Logger: quiet, fs: fs})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = e.Close(ctx) }()

	const publishers, each = 4, 300
	channels := []string{"crash:a", "crash:b", "crash:c"}
	var log ackLog
	log.grown.L = &log.mu
	type image struct {
		fs   *vfs.MemFS
		acks []acked
	}
	var images []image
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				ch := channels[(p+i)%len(channels)]
				data := fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)
				pos, err := e.Publish(ctx, ch, []byte(data), engine.PublishOptions{HistorySize: publishers * each})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				log.add(acked{ch, pos, data})
			}
		})
	}
	go func() {
		wg.Wait()
		log.stop()
	}()
	// An image is taken right after a snapshot of the acks: those must all
	// be in it; acks that come in while it is taken may be.
	const total = publishers * each
	for k := 1; k <= 6; k++ {
		acks := log.waitFor(k * total / 6)
		images = append(images, image{fs.CrashClone(vfs.CrashCloneCfg{}), acks})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := len(images[len(images)-1].acks); got != total {
		t.Fatalf("last image taken after %d of %d acks", got, total)
	}

	for n, img := range images {
		crashed, err := Open(ctx, Config{Dir: dir, Logger: quiet, fs: img.fs})
		if err != nil {
			t.Fatalf("image %d: Open after the crash: %v", n, err)
		}
		stored := map[string]map[uint64]*protocol.Publication{}
		epochs := map[string]string{}
		for _, ch := range channels {
			res, err := crashed.History(ctx, ch, engine.HistoryQuery{Limit: -1})
			if err != nil {
				t.Fatalf("image %d: History(%s): %v", n, ch, err)
			}
			stored[ch] = map[uint64]*protocol.Publication{}
			for _, p := range res.Publications {
				stored[ch][p.Offset] = p
			}
			epochs[ch] = res.Position.Epoch
		}
		if err := crashed.Close(ctx); err != nil {
			t.Fatalf("image %d: Close: %v", n, err)
		}
		for _, a := range img.acks {
			p := stored[a.channel][a.pos.Offset]
			if p == nil {
				t.Fatalf("image %d of %d acks: %s offset %d was acknowledged and is lost", n, len(img.acks), a.channel, a.pos.Offset)
			}
			if string(p.Data) != a.data || epochs[a.channel] != a.pos.Epoch {
				t.Fatalf("image %d: %s offset %d holds %s in epoch %q, acknowledged %s in epoch %q", n, a.channel, a.pos.Offset, p.Data, epochs[a.channel], a.data, a.pos.Epoch)
			}
		}
		t.Logf("image %d: all %d acknowledged publications present", n, len(img.acks))
	}
}
