package sse_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
	"github.com/heraldrt/herald/internal/transport/sse"
)

// disconnects is an Observer that keeps the disconnects it hears of.
type disconnects struct {
	mu  sync.Mutex
	got []protocol.Disconnect
}

func (o *disconnects) Disconnected(_ string, d protocol.Disconnect) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, d)
}

func (o *disconnects) seen() []protocol.Disconnect {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]protocol.Disconnect(nil), o.got...)
}

func (*disconnects) EngineCall(string, time.Duration, error) {}
func (*disconnects) FannedOut(time.Duration)                 {}
func (*disconnects) Flushed(string, int, time.Duration)      {}
func (*disconnects) Received(string)                         {}
func (*disconnects) Dropped(string, string, int)             {}
func (*disconnects) AuthFailed(uint32)                       {}

// A stream on its handler goroutine whose client stops reading ends as a
// slow consumer once a write has waited WriteTimeout, even though its
// session's queue never overflowed: the node hears of a 4001 disconnect,
// as it does for WebSocket's stalled writes.
func TestHandlerStreamWriteTimeoutIsSlowConsumer(t *testing.T) {
	obs := &disconnects{}
	e := setupServer(t,
		node.Config{Observer: obs, MaxQueueBytes: 256 << 20},
		sse.Config{WriteTimeout: 300 * time.Millisecond},
		func(l net.Listener) net.Listener { return smallSendBuffers{l} }, true)
	stalled := e.dial("channel=stall", nil)
	defer stalled.close()
	stalled.nextSubscribed("stall")
	// From here on the client reads nothing. 16 MiB outgrow the kernel's
	// buffers on loopback, so a write blocks.
	data := `"` + strings.Repeat("x", 16<<10) + `"`
	for range 1024 {
		e.publish("stall", data, false)
	}
	testkit.WaitFor(t, waitTimeout, "the stalled stream to be closed", func() bool { return len(obs.seen()) > 0 })
	if got := obs.seen(); len(got) != 1 || got[0] != protocol.DisconnectSlowConsumer {
		t.Fatalf("disconnects %v, want one slow consumer", got)
	}
}
