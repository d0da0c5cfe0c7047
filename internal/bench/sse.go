package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
)

// sseTransport holds subscribers on /sse, one stream per connection, read
// by httpStream on the event loop.
type sseTransport struct{ f *fleet }

// sseConn is the transport state of one SSE subscriber; its fields other
// than st are used on the event loop only.
type sseConn struct {
	f       *fleet
	s       *sub
	st      atomic.Pointer[httpStream]
	partial []byte // an incomplete line from the previous piece
	errBody []byte // the body of a non-200 answer
}

func (t *sseTransport) prepare(s *sub) { s.conn = &sseConn{f: t.f, s: s} }

func (t *sseTransport) open(s *sub) {
	c := s.conn.(*sseConn)
	u, _ := url.Parse(t.f.spec.Server)
	req := requestHead(u.Host, "/sse?channel="+url.QueryEscape(s.channel), "Accept: text/event-stream")
	st, err := dialStream(t.f.ctx, t.f.loop, s.idx, c, req)
	if err != nil {
		t.f.failed(s, fmt.Errorf("sse: %w", err))
		return
	}
	c.st.Store(st)
	if st := s.state.Load(); st == stateFailed || st == stateClosing {
		t.close(s) // ended while dialing
	}
}

func (t *sseTransport) close(s *sub) {
	if c, _ := s.conn.(*sseConn); c != nil {
		if st := c.st.Load(); st != nil {
			st.close()
		}
	}
}

// SSE lines the bench acts on; everything else (retry, ids, event names,
// keep-alive comments, presence events) is skipped.
var (
	sseSubscribed  = []byte(`data: {"type":"subscribed"`)
	ssePublication = []byte(`data: {"type":"publication"`)
	sseDisconnect  = []byte(`data: {"type":"disconnect"`)
)

func (c *sseConn) body(st *httpStream, data []byte) {
	if st.status != 200 {
		if len(c.errBody) < 256 {
			c.errBody = append(c.errBody, data[:min(len(data), 256)]...)
		}
		return
	}
	if len(c.partial) > 0 {
		c.partial = append(c.partial, data...)
		data = c.partial
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.line(st, data[:i])
		data = data[i+1:]
	}
	// Keep an incomplete line for the next piece; reuse the buffer.
	c.partial = append(c.partial[:0], data...)
	if len(c.partial) == 0 && cap(c.partial) > 4096 {
		c.partial = nil
	}
}

func (c *sseConn) line(st *httpStream, line []byte) {
	switch {
	case bytes.HasPrefix(line, ssePublication):
		c.f.deliver(c.s, line)
	case bytes.HasPrefix(line, sseSubscribed):
		c.f.subscribed(c.s)
	case bytes.HasPrefix(line, sseDisconnect):
		c.f.noteErr(fmt.Errorf("sse: server ended the stream: %s", line[len("data: "):]))
		c.f.failed(c.s, errors.New("sse: disconnected before subscribing"))
		st.close()
	}
}

func (c *sseConn) complete(st *httpStream) {
	// An event stream never completes while it is healthy.
	if st.status != 200 {
		c.f.failed(c.s, fmt.Errorf("sse: %w", statusError(st.status, c.errBody)))
	}
	st.close()
}

func (c *sseConn) closed(_ *httpStream, err error) { c.f.closed(c.s, err) }
