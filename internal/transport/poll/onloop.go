package poll

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// loopPolls is the event-loop side of a Handler: started by Start, it owns
// the waiting long polls moved off their handler goroutines.
type loopPolls struct {
	loop    *eventloop.Loop
	workers *eventloop.Pool

	mu    sync.Mutex
	polls map[*loopPoll]struct{}
}

// Start starts the event loop on which waiting long polls over plain
// HTTP/1.1 hold no goroutine. A Handler that is not started waits on the
// handler goroutine.
func (h *Handler) Start() error {
	lp := &loopPolls{
		loop:    eventloop.NewLoop(eventloop.LoopConfig{Name: "herald-poll"}),
		workers: eventloop.NewPool(4 * runtime.GOMAXPROCS(0)),
		polls:   make(map[*loopPoll]struct{}),
	}
	if err := lp.loop.Start(); err != nil {
		return err
	}
	h.onLoop.Store(lp)
	return nil
}

// Shutdown answers the polls still waiting on the event loop with what they
// have, as their deadline would, then stops the loop, closing what is left.
// The node's Shutdown, which runs first, has already woken them.
func (h *Handler) Shutdown(ctx context.Context) error {
	lp := h.onLoop.Load()
	if lp == nil {
		return nil
	}
	lp.mu.Lock()
	all := make([]*loopPoll, 0, len(lp.polls))
	for p := range lp.polls {
		all = append(all, p)
	}
	lp.mu.Unlock()
	for _, p := range all {
		p.expire()
	}
	err := lp.workers.Wait(ctx)
	return errors.Join(err, lp.loop.Shutdown(ctx))
}

// loopPoll is a long poll waiting on the event loop. Its checks run as
// turns on the workers pool, at most one at a time, so PollWait.Check is
// never called concurrently.
type loopPoll struct {
	owner   *loopPolls
	log     *slog.Logger
	wait    *node.PollWait // set before the first wake can run a check
	timer   *time.Timer    // the deadline; set before adoption
	checker eventloop.Serial
	// header holds the header lines that handlers wrapping this one set
	// before the hijack (CORS answers a cross-origin page needs), written
	// into the hand-made response; nil when there are none.
	header []byte

	mu      sync.Mutex
	conn    *eventloop.Conn // nil until adopted
	pending bool            // woken before adoption
	expired bool            // the deadline passed: answer whatever the check finds
	done    bool            // answered, or the connection is gone
}

// wake is the PollWait's notify: it schedules a check and never blocks.
func (p *loopPoll) wake() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scheduleLocked()
}

// expire makes the next check answer even when it finds nothing.
func (p *loopPoll) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expired = true
	p.scheduleLocked()
}

func (p *loopPoll) scheduleLocked() {
	switch {
	case p.done:
	case p.conn == nil:
		p.pending = true
	default:
		p.checker.Schedule()
	}
}

// serveOnLoop hijacks the connection of a poll that has to wait and hands it
// to the event loop, which answers it when pw has something, at the
// deadline, or on shutdown. It reports false, leaving w untouched, when the
// connection cannot be hijacked; once it reports true the poll is the loop's
// and pw is closed when the connection closes.
func (p *loopPoll) serveOnLoop(w http.ResponseWriter, timeout time.Duration) bool {
	header := headerLines(w.Header())
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	p.header = header
	p.timer = time.AfterFunc(timeout, p.expire)
	c, err := p.owner.loop.Adopt(conn, p.closed)
	if err != nil {
		p.log.Warn("poll not adopted by the event loop", "err", err)
		p.timer.Stop()
		_ = conn.Close()
		p.wait.Close()
		return true
	}
	p.owner.mu.Lock()
	p.owner.polls[p] = struct{}{}
	p.owner.mu.Unlock()
	p.mu.Lock()
	p.conn = c
	if p.pending {
		p.scheduleLocked()
	}
	p.mu.Unlock()
	return true
}

// checkTurn checks once, unless the poll was answered already.
func (p *loopPoll) checkTurn() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	expired := p.expired
	p.mu.Unlock()
	if p.check(expired) {
		p.mu.Lock()
		p.done = true
		p.mu.Unlock()
	}
}

// check reads the channels and answers when there is something to send or
// the deadline has passed; it reports whether it answered.
func (p *loopPoll) check(expired bool) bool {
	// The request's context ended with the hijack; the read is bounded on
	// its own.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	res, ready, err := p.wait.Check(ctx)
	if err == nil && !ready && !expired {
		return false
	}
	var resp []byte
	if err == nil {
		resp, err = resultResponse(res, p.header)
	}
	if err != nil {
		resp = errorResponse(err, p.header)
	}
	if err := p.conn.WriteAndClose(resp, writeTimeout); err != nil {
		p.log.Debug("poll response not delivered", "err", err)
	}
	return true
}

// closed runs once the connection is gone: answered, closed by the client or
// by the loop's shutdown.
func (p *loopPoll) closed(error) {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	p.timer.Stop()
	p.owner.mu.Lock()
	delete(p.owner.polls, p)
	p.owner.mu.Unlock()
	p.wait.Close()
}

// resultResponse is the complete HTTP/1.1 response carrying res.
func resultResponse(res *node.PollResult, header []byte) ([]byte, error) {
	body, err := protocol.Marshal(res)
	if err != nil {
		return nil, err
	}
	return response(http.StatusOK, body, header), nil
}

// errorResponse is the complete HTTP/1.1 response protocol.WriteHTTPError
// would give for err.
func errorResponse(err error, header []byte) []byte {
	e := protocol.AsError(err)
	return response(protocol.HTTPStatus(e), protocol.ErrorBody(e), header)
}

// ownHeaders are the header fields response writes itself.
var ownHeaders = map[string]bool{"Content-Type": true, "Cache-Control": true, "X-Content-Type-Options": true, "Connection": true, "Content-Length": true}

// headerLines renders the fields of h that response does not write itself,
// each line ending in CRLF; nil when there are none.
func headerLines(h http.Header) []byte {
	var b []byte
	for name, values := range h {
		if ownHeaders[name] {
			continue
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// response writes the head by hand: the connection is no longer net/http's.
// It closes after the response, so the client's next poll takes a new
// connection that waits on net/http until it too has to wait.
func response(status int, body, header []byte) []byte {
	b := make([]byte, 0, 192+len(header)+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	b = append(b, header...)
	b = append(b, "Content-Type: application/json\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}
