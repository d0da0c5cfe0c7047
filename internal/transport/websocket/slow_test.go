package websocket

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestSlowConsumer(t *testing.T) {
	h := newHarness(t, harnessOptions{
		node: node.Config{MaxQueueBytes: 128 << 10},
		ws:   Config{WriteTimeout: 3 * time.Second},
	})
	ctx := testContext(t)
	const ch = "chat:slow"

	slow := h.dial(ctx)
	slow.connect(ctx)
	slow.subscribe(ctx, protocol.SubscribeRequest{Channel: ch})
	fast := h.dial(ctx)
	fast.connect(ctx)
	fast.subscribe(ctx, protocol.SubscribeRequest{Channel: ch})

	// The fast subscriber reads everything, in order, on its own goroutine.
	var got atomic.Uint64
	errc := make(chan error, 1)
	go func() {
		for want := uint64(1); ; want++ {
			f, err := fast.read(ctx)
			if err != nil {
				errc <- err
				return
			}
			if f.Type != protocol.PushPublication || f.Offset != want {
				errc <- fmt.Errorf("want publication at offset %d, got %+v", want, f)
				return
			}
			got.Store(want)
		}
	}()
	caughtUp := func(offset uint64) func() bool {
		return func() bool {
			select {
			case err := <-errc:
				t.Fatalf("fast subscriber after offset %d: %v", got.Load(), err)
			default:
			}
			return got.Load() >= offset
		}
	}

	// Publish until the slow subscriber, which never reads, is dropped.
	// 16 KiB publications fill the kernel's socket buffers (which grow to a
	// few MiB on loopback), then the transport's, then the session's queue,
	// in a few hundred publications.
	data := `{"pad":"` + strings.Repeat("x", 16<<10) + `"}`
	var last uint64
	for h.node.Info().NumClients == 2 {
		if last == 5000 {
			t.Fatal("the slow subscriber is still connected after 5000 publications")
		}
		last = publish(t, h.node, ch, data).Offset
		// Stay within the fast subscriber's own queue bound: this test is
		// about the other one.
		testkit.WaitFor(t, 10*time.Second, "the fast subscriber to catch up", caughtUp(max(last, 4)-4))
	}
	// What was written before the drop is still in the pipe, then the close
	// frame with the reason.
	slow.expectClose(ctx, protocol.DisconnectSlowConsumer)
	testkit.WaitFor(t, 10*time.Second, "the fast subscriber to get everything", caughtUp(last))
	t.Logf("slow subscriber dropped after %d publications", last)
}
