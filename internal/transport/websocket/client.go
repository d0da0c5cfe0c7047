package websocket

import (
	"context"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// client is one WebSocket connection: the node.Transport of its session and
// the events receiver of its socket. It runs two serial lanes on the
// server's pools:
//
//   - the command lane feeds inbound frames to Session.HandleFrame one at a
//     time, in order, and finally calls Session.Finish. Commands may block
//     (engine writes, history reads), so they never run on the library's
//     goroutines.
//   - the flush lane drains the session's queue into the socket. Wake
//     schedules it; at most one flush per connection is queued or running.
//
// Lock order: Session's lock may be held when Wake is called, and Wake takes
// only the pool's lock. c.mu is never held while calling into the session,
// the socket or a pool.
type client struct {
	srv  *Server
	sess *node.Session // set before the socket is attached, then read-only

	// flusher runs flushOnce on the writers pool, one flush at a time.
	flusher eventloop.Serial

	mu sync.Mutex
	// sock is nil until the library attaches it.
	sock socket
	// Inbound frames waiting for the command lane, oldest first.
	inbox      [][]byte
	inboxBytes int
	laneBusy   bool // the command lane is queued or running
	// cancel aborts the commands running now; nil while the lane is idle.
	cancel context.CancelFunc
	ctx    context.Context
	// closing: a close frame is sent or due; inbound frames are dropped.
	closing    bool
	finishDue  bool // Session.Finish must run on the command lane
	finished   bool // Session.Finish has run
	sockClosed bool // the socket reported closed
	forgotten  bool // removed from the server's registry
	// Flush stall: set while the socket's backlog is over its high-water
	// mark. stallGen tells the timer that fires whether it is still current.
	stallTimer   *time.Timer
	stallGen     uint64
	stallExpired bool
}

var (
	_ node.Transport = (*client)(nil)
	_ events         = (*client)(nil)
)

// Limits of the command lane. A client that pipelines past them while its
// commands wait on the engine is disconnected rather than buffered.
const (
	maxInboxFrames = 1024
	// framesPerTurn bounds how many frames one lane runs before yielding its
	// worker to other connections.
	framesPerTurn = 32
)

// commandJob submits the client as the command lane's job, without
// allocating.
type commandJob client

func (j *commandJob) Run() { (*client)(j).runCommands() }

// Name is the transport's name in logs and metrics.
func (c *client) Name() string { return "websocket" }

// newClient returns the client of a connection being upgraded.
func newClient(srv *Server) *client {
	c := &client{srv: srv}
	c.flusher.Init(srv.writers, c.flushOnce)
	return c
}

// Wake schedules a flush. It never blocks: it is called from the fan-out
// path with the session's lock held.
func (c *client) Wake() { c.flusher.Schedule() }

// flushOnce writes what the session has queued, then performs the
// disconnect it asks for, if any.
func (c *client) flushOnce() {
	c.mu.Lock()
	sock, closing, expired := c.sock, c.closing, c.stallExpired
	c.mu.Unlock()
	if sock == nil || closing {
		// Not attached yet (attach wakes us again), or done writing.
		return
	}
	if expired {
		// The backlog stayed above the high-water mark for WriteTimeout:
		// the peer cannot keep up, and whatever is queued would not reach it
		// in time either.
		_, d := c.sess.Drain(nil)
		if d == nil {
			d = &protocol.DisconnectSlowConsumer
		}
		c.sess.Close(protocol.DisconnectSlowConsumer)
		c.closeSocket(sock, *d)
		return
	}
	if sock.blocked() {
		// A disconnect the session asked for (shutdown, slow consumer, no
		// pong) need not wait for the backlog: the client resumes from
		// history either way.
		if d := c.sess.Closing(); d != nil {
			c.closeSocket(sock, *d)
			return
		}
		c.stall()
		return
	}
	c.unstall()

	buf := c.srv.getBuffer()
	var d *protocol.Disconnect
	buf.items, d = c.sess.Drain(buf.items[:0])
	err := c.writeItems(sock, buf)
	c.srv.putBuffer(buf)
	if err != nil {
		// The socket is gone or going; its closed event finishes the session.
		c.srv.log.Debug("websocket write failed", "client", c.sess.ID(), "err", err)
		return
	}
	if d != nil {
		c.closeSocket(sock, *d)
	}
}

// writeItems coalesces the frames of buf.items, joined by '\n', into as few
// text messages of at most srv.maxCoalesced bytes as possible. A frame
// longer than that is written alone, straight from its own bytes.
func (c *client) writeItems(sock socket, buf *flushBuffer) error {
	limit := c.srv.maxCoalesced
	msg := buf.msg[:0]
	for i := range buf.items {
		f := buf.items[i].Frame
		if len(msg) > 0 && len(msg)+1+len(f) > limit {
			if err := sock.writeText(msg); err != nil {
				return err
			}
			msg = msg[:0]
		}
		if len(f) > limit {
			if err := sock.writeText(f); err != nil {
				return err
			}
			continue
		}
		if len(msg) > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, f...)
	}
	buf.msg = msg
	if len(msg) > 0 {
		return sock.writeText(msg)
	}
	return nil
}

// closeSocket sends d as the close frame and finishes the session without
// waiting for the peer's answer: from the node's point of view the client is
// gone once told so.
func (c *client) closeSocket(sock socket, d protocol.Disconnect) {
	sock.closeWith(d.Code, closeReason(d.Reason))
	c.mu.Lock()
	c.closing = true
	c.dropInboxLocked()
	c.stopStallLocked()
	sched := c.scheduleFinishLocked()
	c.mu.Unlock()
	if sched {
		c.srv.commands.Submit((*commandJob)(c))
	}
}

// stall arms the WriteTimeout timer the first time a flush finds the socket
// blocked. The socket's drained event wakes the flush lane again.
func (c *client) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stallTimer != nil || c.closing {
		return
	}
	c.stallGen++
	gen := c.stallGen
	c.stallTimer = time.AfterFunc(c.srv.writeTimeout, func() { c.stallTimeout(gen) })
}

func (c *client) unstall() {
	c.mu.Lock()
	c.stopStallLocked()
	c.mu.Unlock()
}

// stopStallLocked disarms the stall timer. Caller must hold c.mu.
func (c *client) stopStallLocked() {
	if c.stallTimer != nil {
		c.stallTimer.Stop()
		c.stallTimer = nil
		c.stallGen++
	}
}

func (c *client) stallTimeout(gen uint64) {
	c.mu.Lock()
	current := c.stallTimer != nil && c.stallGen == gen
	if current {
		c.stallExpired = true
	}
	c.mu.Unlock()
	if current {
		c.Wake()
	}
}

// attach implements events.
func (c *client) attach(s socket) {
	c.mu.Lock()
	c.sock = s
	c.mu.Unlock()
	if c.srv.state.Load() == serverStopped {
		// Upgraded while Shutdown was already closing connections. Not
		// here: attach runs inside the upgrade, which holds the socket
		// library's fence that abort takes.
		go s.abort()
		return
	}
	// Anything the session queued before the socket existed (a shutdown
	// notice, say) is flushed now.
	c.Wake()
}

// text implements events: it queues data for the command lane.
func (c *client) text(data []byte) {
	c.mu.Lock()
	if c.closing || c.finishDue {
		c.mu.Unlock()
		return
	}
	if len(c.inbox) >= maxInboxFrames || c.inboxBytes+len(data) > c.srv.maxInboxBytes {
		c.mu.Unlock()
		d := protocol.DisconnectBadRequest
		d.Reason = "too many commands in flight"
		c.sess.Close(d)
		return
	}
	c.inbox = append(c.inbox, data)
	c.inboxBytes += len(data)
	sched := !c.laneBusy
	c.laneBusy = true
	c.mu.Unlock()
	if sched {
		c.srv.commands.Submit((*commandJob)(c))
	}
}

// binary implements events: Herald's protocol is JSON text only.
func (c *client) binary() {
	d := protocol.DisconnectBadRequest
	d.Reason = "binary messages are not supported"
	c.sess.Close(d)
}

// tooLarge implements events.
func (c *client) tooLarge() { c.sess.Close(protocol.DisconnectMessageTooLarge) }

// drained implements events: the backlog that stalled the flush lane is gone.
func (c *client) drained() { c.Wake() }

// closed implements events. Commands still queued are dropped and the ones
// running are cancelled; Session.Finish follows on the command lane.
func (c *client) closed(err error) {
	c.srv.log.Debug("websocket closed", "client", c.sess.ID(), "err", err)
	c.mu.Lock()
	c.sockClosed = true
	c.closing = true
	c.dropInboxLocked()
	c.stopStallLocked()
	if c.cancel != nil {
		c.cancel()
	}
	c.endUnlock()
}

// endUnlock schedules Session.Finish and drops the client from the
// server's registry when their time has come, then releases c.mu, which the
// caller holds.
func (c *client) endUnlock() {
	sched := c.scheduleFinishLocked()
	forget := c.forgetLocked()
	c.mu.Unlock()
	if sched {
		c.srv.commands.Submit((*commandJob)(c))
	}
	if forget {
		c.srv.forget(c)
	}
}

// upgradeFailed ends a client whose handshake did not complete.
func (c *client) upgradeFailed() {
	c.mu.Lock()
	c.sockClosed = true
	c.closing = true
	c.endUnlock()
}

// abortSocket drops the connection at once, if it has one.
func (c *client) abortSocket() {
	c.mu.Lock()
	sock := c.sock
	c.mu.Unlock()
	if sock != nil {
		sock.abort()
	}
}

// dropInboxLocked discards queued inbound frames. Caller must hold c.mu.
func (c *client) dropInboxLocked() {
	clear(c.inbox)
	c.inbox, c.inboxBytes = nil, 0
}

// scheduleFinishLocked marks Session.Finish as due and reports whether the
// caller must submit the command lane. Caller must hold c.mu.
func (c *client) scheduleFinishLocked() bool {
	if c.finishDue {
		return false
	}
	c.finishDue = true
	if c.laneBusy {
		return false // the running lane sees finishDue
	}
	c.laneBusy = true
	return true
}

// forgetLocked reports, once, that the client is completely done: socket
// closed and session finished. Caller must hold c.mu.
func (c *client) forgetLocked() bool {
	if c.forgotten || !c.sockClosed || !c.finished {
		return false
	}
	c.forgotten = true
	return true
}

// runCommands is the command lane: inbound frames in order, then Finish.
func (c *client) runCommands() {
	for n := 0; ; n++ {
		c.mu.Lock()
		if c.finishDue && !c.finished {
			c.dropInboxLocked()
			c.mu.Unlock()
			c.sess.Finish()
			c.mu.Lock()
			c.finished = true
			c.releaseContextLocked()
			c.laneBusy = false
			forget := c.forgetLocked()
			c.mu.Unlock()
			if forget {
				c.srv.forget(c)
			}
			return
		}
		if len(c.inbox) == 0 || c.closing || c.finished {
			c.releaseContextLocked()
			c.laneBusy = false
			c.mu.Unlock()
			return
		}
		if n == framesPerTurn {
			// Still busy: yield the worker and requeue (laneBusy stays set).
			c.mu.Unlock()
			c.srv.commands.Submit((*commandJob)(c))
			return
		}
		frame := c.inbox[0]
		c.inbox[0] = nil
		c.inbox = c.inbox[1:]
		if len(c.inbox) == 0 {
			c.inbox = nil // do not keep the backing array while idle
		}
		c.inboxBytes -= len(frame)
		if c.ctx == nil {
			c.ctx, c.cancel = context.WithCancel(c.srv.ctx)
		}
		ctx := c.ctx
		c.mu.Unlock()
		c.sess.HandleFrame(ctx, frame)
	}
}

// releaseContextLocked cancels and drops the lane's context, so an idle
// connection holds none. Caller must hold c.mu.
func (c *client) releaseContextLocked() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
}

// maxCloseReason is what fits a close frame: 125 bytes of payload, two of
// them the code.
const maxCloseReason = 123

// closeReason truncates reason to fit a close frame, on a UTF-8 boundary.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
