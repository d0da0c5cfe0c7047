package sse

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// loopStreams is the event-loop side of a Handler: started by Start, it owns
// the streams moved off their handler goroutines.
type loopStreams struct {
	loop    *eventloop.Loop
	writers *eventloop.Pool

	mu      sync.Mutex
	streams map[*loopStream]struct{}

	stopSweep chan struct{}
	swept     chan struct{}
}

// Start starts the event loop that serves plain HTTP/1.1 streams without a
// goroutine each. A Handler that is not started serves every stream on its
// handler goroutine.
func (h *Handler) Start() error {
	ls := &loopStreams{
		loop:      eventloop.NewLoop(eventloop.LoopConfig{Name: "herald-sse", MaxBufferedBytes: h.cfg.MaxBufferedBytes + streamHardSlack}),
		writers:   eventloop.NewPool(4 * runtime.GOMAXPROCS(0)),
		streams:   make(map[*loopStream]struct{}),
		stopSweep: make(chan struct{}),
		swept:     make(chan struct{}),
	}
	if err := ls.loop.Start(); err != nil {
		return err
	}
	go ls.sweep(h.cfg.KeepAlive)
	h.onLoop.Store(ls)
	return nil
}

// Shutdown closes the streams still on the event loop and stops it. The
// node's Shutdown, which runs first, has already sent each of them a
// disconnect event.
func (h *Handler) Shutdown(ctx context.Context) error {
	ls := h.onLoop.Load()
	if ls == nil {
		return nil
	}
	close(ls.stopSweep)
	<-ls.swept
	err := ls.loop.Shutdown(ctx)
	return errors.Join(err, ls.writers.Wait(ctx))
}

// sweep sends every stream on the loop a keep-alive each interval, from one
// goroutine rather than a timer per stream.
func (ls *loopStreams) sweep(interval time.Duration) {
	defer close(ls.swept)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ls.stopSweep:
			return
		case <-t.C:
		}
		ls.mu.Lock()
		all := make([]*loopStream, 0, len(ls.streams))
		for s := range ls.streams {
			all = append(all, s)
		}
		ls.mu.Unlock()
		for _, s := range all {
			s.keepAlive()
		}
	}
}

// serveOnLoop hijacks the connection, writes the response head and hands the
// stream to the event loop. It reports false, leaving w untouched, when the
// handler is not started or the connection cannot be hijacked; once it
// reports true the stream is the loop's, and the session is finished when
// the connection closes.
func (h *Handler) serveOnLoop(w http.ResponseWriter, sess *node.Session, t *transport, st *stream) bool {
	owner := h.onLoop.Load()
	if owner == nil {
		return false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// The body is delimited by the connection's close (no Content-Length,
	// no chunking), which HTTP/1.1 allows for a response, so the stream is
	// written as plain SSE text.
	head := []byte("HTTP/1.1 200 OK\r\n")
	hdr := w.Header()
	setHeaders(hdr)
	hdr.Set("Connection", "close")
	hdr.Del("Content-Length")
	var hb headerBuffer
	_ = hdr.Write(&hb)
	head = append(append(head, hb...), "\r\n"...)
	st.appendRetry()
	head = append(head, st.out...)
	st.out = st.out[:0]
	_ = conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	_, err = conn.Write(head)
	_ = conn.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = conn.Close()
		sess.Finish()
		return true
	}
	s := &loopStream{owner: owner, log: h.cfg, sess: sess, st: st}
	s.flusher.Init(owner.writers, s.flushTurn)
	st.sink = s
	c, err := owner.loop.Adopt(conn, s.closed)
	if err != nil {
		h.cfg.Logger.Warn("sse stream not adopted by the event loop", "err", err)
		_ = conn.Close()
		sess.Finish()
		return true
	}
	c.OnDrained(s.schedule)
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	owner.mu.Lock()
	owner.streams[s] = struct{}{}
	owner.mu.Unlock()
	t.attach(s.schedule)
	return true
}

// headerBuffer collects http.Header.Write's output.
type headerBuffer []byte

func (b *headerBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// loopStream is a stream on the event loop. Its writes happen in flush turns
// on the writers pool, at most one at a time per stream.
type loopStream struct {
	owner   *loopStreams
	log     Config
	sess    *node.Session
	st      *stream
	flusher eventloop.Serial

	mu           sync.Mutex
	conn         *eventloop.Conn // nil until adopted
	keepAliveDue bool
	done         bool
}

// schedule makes sure a flush runs after this call. It never blocks.
func (s *loopStream) schedule() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if !done {
		s.flusher.Schedule()
	}
}

func (s *loopStream) keepAlive() {
	s.mu.Lock()
	s.keepAliveDue = true
	s.mu.Unlock()
	s.schedule()
}

// flushTurn writes what the session queued, and a due keep-alive.
func (s *loopStream) flushTurn() {
	s.mu.Lock()
	if s.done || s.conn == nil {
		s.mu.Unlock()
		return
	}
	keepAlive := s.keepAliveDue
	s.keepAliveDue = false
	s.mu.Unlock()
	s.flushOnce(keepAlive)
}

// streamHardSlack is how far past Config.MaxBufferedBytes the loop lets a
// stream's backlog go before it drops the connection: a safety net, should
// one drained batch be huge (a full session queue, formatted with an id
// naming every channel of the stream in each event).
const streamHardSlack = 64 << 20

func (s *loopStream) flushOnce(keepAlive bool) {
	high := int64(s.log.MaxBufferedBytes)
	if s.conn.Blocked(high, high/4) && s.sess.Closing() == nil {
		if keepAlive {
			// Data is waiting for the client: no comment is needed to keep
			// the connection busy, but presence must not expire.
			s.sess.RefreshPresence()
		}
		return
	}
	items, d := s.sess.Drain(s.st.items[:0])
	if keepAlive {
		s.st.appendKeepAlive()
	}
	err := s.st.write(items, d)
	written := len(items)
	s.st.recycle(items)
	if err == nil {
		s.sess.Wrote(written, 0)
	}
	if keepAlive {
		s.sess.RefreshPresence()
		s.sess.ReleaseIdleQueue()
	}
	if err != nil || d != nil {
		if d != nil {
			s.log.Logger.Debug("sse stream closed by server", "client", s.sess.ID(), "code", d.Code, "reason", d.Reason)
		}
		_ = s.conn.Close()
	}
}

// send writes a batch to the connection without blocking; a client that
// reads too slowly overflows the loop's buffer bound and is closed.
func (s *loopStream) send(b []byte) error { return s.conn.Write(b) }

// closed runs once the connection is gone, whoever closed it.
func (s *loopStream) closed(error) {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.owner.mu.Lock()
	delete(s.owner.streams, s)
	s.owner.mu.Unlock()
	s.sess.Finish()
}
