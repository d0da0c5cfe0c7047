package duplex

import (
	"context"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// Conn is one connection: the node.Transport of its session and the
// receiver of its socket's events. It runs two serial lanes on the
// host's pools:
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
type Conn struct {
	host *Host
	sess *node.Session // set before the socket is attached, then read-only

	// flusher runs flushOnce on the writers pool, one flush at a time.
	flusher eventloop.Serial

	mu sync.Mutex
	// sock is nil until the library attaches it.
	sock Socket
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

var _ node.Transport = (*Conn)(nil)

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
type commandJob Conn

func (j *commandJob) Run() { (*Conn)(j).runCommands() }

// Name is the transport's name in logs and metrics.
func (c *Conn) Name() string { return c.host.name }

// Session is the connection's session.
func (c *Conn) Session() *node.Session { return c.sess }

// Wake schedules a flush. It never blocks: it is called from the fan-out
// path with the session's lock held.
func (c *Conn) Wake() { c.flusher.Schedule() }

// flushOnce writes what the session has queued, then performs the
// disconnect it asks for, if any.
func (c *Conn) flushOnce() {
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
		// Closing first counts the queue Close discards as dropped.
		c.sess.Close(protocol.DisconnectSlowConsumer)
		_, d := c.sess.Drain(nil)
		if d == nil {
			d = &protocol.DisconnectSlowConsumer
		}
		c.closeSocket(sock, *d)
		return
	}
	if sock.Blocked() {
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

	buf := c.host.getBuffer()
	var d *protocol.Disconnect
	buf.items, d = c.sess.Drain(buf.items[:0])
	err := c.writeItems(sock, buf)
	items, superseded := len(buf.items), buf.superseded
	c.host.putBuffer(buf)
	if err != nil {
		// The socket is gone or going; its closed event finishes the session.
		c.host.log.Debug("write failed", "client", c.sess.ID(), "err", err)
		return
	}
	c.sess.Wrote(items-superseded, superseded)
	if d != nil {
		c.closeSocket(sock, *d)
	}
}

// writeItems coalesces the frames of buf.items, joined by '\n', into as few
// text messages of at most host.maxCoalesced bytes as possible. A frame
// longer than that is written alone, straight from its own bytes. When the
// socket has an unreliable path open, latest-only publications take it
// instead, one per message so a lost packet loses one, and only the newest
// of each channel.
func (c *Conn) writeItems(sock Socket, buf *flushBuffer) error {
	limit := c.host.maxCoalesced
	msg := buf.msg[:0]
	lossy, _ := sock.(LatestSocket)
	if lossy != nil && !lossy.HasLatestPath() {
		lossy = nil
	}
	buf.superseded = 0
	var newest map[string]int
	if lossy != nil {
		newest = newestLatest(buf.items)
	}
	for i := range buf.items {
		f := buf.items[i].Frame
		if newest != nil && buf.items[i].Latest {
			if newest[buf.items[i].Channel] != i {
				buf.superseded++
				continue
			}
			if err := lossy.WriteLatest(f); err != nil {
				return err
			}
			continue
		}
		if len(msg) > 0 && len(msg)+1+len(f) > limit {
			if err := sock.WriteText(msg); err != nil {
				return err
			}
			msg = msg[:0]
		}
		if len(f) > limit {
			if err := sock.WriteText(f); err != nil {
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
		return sock.WriteText(msg)
	}
	return nil
}

// newestLatest maps the channel of each latest-only publication in items to
// the index of its newest one; nil when there is none.
func newestLatest(items []node.Item) map[string]int {
	var newest map[string]int
	for i := range items {
		if !items[i].Latest {
			continue
		}
		if newest == nil {
			newest = make(map[string]int)
		}
		newest[items[i].Channel] = i
	}
	return newest
}

// closeSocket sends d as the close frame and finishes the session without
// waiting for the peer's answer: from the node's point of view the client is
// gone once told so.
func (c *Conn) closeSocket(sock Socket, d protocol.Disconnect) {
	sock.CloseWith(d)
	c.mu.Lock()
	c.closing = true
	c.dropInboxLocked()
	c.stopStallLocked()
	sched := c.scheduleFinishLocked()
	c.mu.Unlock()
	if sched {
		c.host.commands.Submit((*commandJob)(c))
	}
}

// stall arms the WriteTimeout timer the first time a flush finds the socket
// blocked. The socket's drained event wakes the flush lane again.
func (c *Conn) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stallTimer != nil || c.closing {
		return
	}
	c.stallGen++
	gen := c.stallGen
	c.stallTimer = time.AfterFunc(c.host.writeTimeout, func() { c.stallTimeout(gen) })
}

func (c *Conn) unstall() {
	c.mu.Lock()
	c.stopStallLocked()
	c.mu.Unlock()
}

// stopStallLocked disarms the stall timer. Caller must hold c.mu.
func (c *Conn) stopStallLocked() {
	if c.stallTimer != nil {
		c.stallTimer.Stop()
		c.stallTimer = nil
		c.stallGen++
	}
}

func (c *Conn) stallTimeout(gen uint64) {
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

// Attach gives the connection its socket, which may deliver events from
// then on. Anything the session queued before is flushed now.
func (c *Conn) Attach(s Socket) {
	c.mu.Lock()
	c.sock = s
	c.mu.Unlock()
	if c.host.Stopped() {
		// Attached while Stop was already dropping connections. Not
		// here: Attach may run inside the library's upgrade, holding a lock
		// (the WebSocket library's fence) that Abort takes.
		go s.Abort()
		return
	}
	// A shutdown notice, say, may be waiting.
	c.Wake()
}

// Text delivers one complete inbound text message, queued for the command
// lane; ownership of data passes to the connection. The socket delivers a
// connection's messages one at a time, in order, and must not block.
func (c *Conn) Text(data []byte) {
	c.mu.Lock()
	if c.closing || c.finishDue {
		c.mu.Unlock()
		return
	}
	if len(c.inbox) >= maxInboxFrames || c.inboxBytes+len(data) > c.host.maxInboxBytes {
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
		c.host.commands.Submit((*commandJob)(c))
	}
}

// Binary reports a binary message: Herald's protocol is JSON text only.
func (c *Conn) Binary() {
	d := protocol.DisconnectBadRequest
	d.Reason = "binary messages are not supported"
	c.sess.Close(d)
}

// TooLarge reports a message over the size limit; the socket delivers no
// more messages.
func (c *Conn) TooLarge() { c.sess.Close(protocol.DisconnectMessageTooLarge) }

// Drained follows a Socket.Blocked that reported true: the backlog that
// stalled the flush lane is gone.
func (c *Conn) Drained() { c.Wake() }

// Closed reports the end of the connection, once, whatever the cause.
// Commands still queued are dropped and the ones running are cancelled;
// Session.Finish follows on the command lane.
func (c *Conn) Closed(err error) {
	c.host.log.Debug("connection closed", "client", c.sess.ID(), "err", err)
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
func (c *Conn) endUnlock() {
	sched := c.scheduleFinishLocked()
	forget := c.forgetLocked()
	c.mu.Unlock()
	if sched {
		c.host.commands.Submit((*commandJob)(c))
	}
	if forget {
		c.host.conns.Remove(c)
	}
}

// Failed ends a connection whose handshake did not complete; no socket was
// attached, or its Closed will not come.
func (c *Conn) Failed() {
	c.mu.Lock()
	c.sockClosed = true
	c.closing = true
	c.endUnlock()
}

// abortSocket drops the connection at once, if it has one.
func (c *Conn) abortSocket() {
	c.mu.Lock()
	sock := c.sock
	c.mu.Unlock()
	if sock != nil {
		sock.Abort()
	}
}

// dropInboxLocked discards queued inbound frames. Caller must hold c.mu.
func (c *Conn) dropInboxLocked() {
	clear(c.inbox)
	c.inbox, c.inboxBytes = nil, 0
}

// scheduleFinishLocked marks Session.Finish as due and reports whether the
// caller must submit the command lane. Caller must hold c.mu.
func (c *Conn) scheduleFinishLocked() bool {
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
func (c *Conn) forgetLocked() bool {
	if c.forgotten || !c.sockClosed || !c.finished {
		return false
	}
	c.forgotten = true
	return true
}

// runCommands is the command lane: inbound frames in order, then Finish.
func (c *Conn) runCommands() {
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
				c.host.conns.Remove(c)
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
			c.host.commands.Submit((*commandJob)(c))
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
			c.ctx, c.cancel = context.WithCancel(c.host.ctx)
		}
		ctx := c.ctx
		c.mu.Unlock()
		c.sess.HandleFrame(ctx, frame)
	}
}

// releaseContextLocked cancels and drops the lane's context, so an idle
// connection holds none. Caller must hold c.mu.
func (c *Conn) releaseContextLocked() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
}
