package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
)

// pollTransport holds long-polling subscribers on /poll. Each keeps one
// HTTP/1.1 connection: a first short poll (timeout=0) learns the channel's
// position, which counts as subscribed; then a long poll waits with
// since=<next>, and every answer is followed at once by the next poll from
// its "next" position. There is always one poll outstanding per
// subscriber, so an idle one is a server-side waiting request. An answer
// with "Connection: close" (how a server that waits without a goroutine
// answers) is followed by the next poll on a new connection.
type pollTransport struct{ f *fleet }

// pollConn is the transport state of one long-polling subscriber; its
// fields other than st are used on the event loop only.
type pollConn struct {
	f     *fleet
	s     *sub
	host  string
	query string // channel=...&timeout=N
	st    atomic.Pointer[httpStream]
	buf   []byte // the body of the answer being read
}

func (t *pollTransport) prepare(s *sub) {
	u, _ := url.Parse(t.f.spec.Server)
	s.conn = &pollConn{
		f:     t.f,
		s:     s,
		host:  u.Host,
		query: "channel=" + url.QueryEscape(s.channel) + "&timeout=" + strconv.Itoa(int(t.f.spec.PollTimeout.Seconds())),
	}
}

func (t *pollTransport) open(s *sub) {
	c := s.conn.(*pollConn)
	first := requestHead(c.host, "/poll?channel="+url.QueryEscape(s.channel))
	st, err := dialStream(t.f.ctx, t.f.loop, s.idx, c, first)
	if err != nil {
		t.f.failed(s, fmt.Errorf("poll: %w", err))
		return
	}
	c.st.Store(st)
	if st := s.state.Load(); st == stateFailed || st == stateClosing {
		t.close(s)
	}
}

func (t *pollTransport) close(s *sub) {
	if c, _ := s.conn.(*pollConn); c != nil {
		if st := c.st.Load(); st != nil {
			st.close()
		}
	}
}

func (c *pollConn) body(_ *httpStream, data []byte) { c.buf = append(c.buf, data...) }

// pollAnswer is the part of an answer the bench needs besides the
// publications, which it scans for directly.
type pollAnswer struct {
	Next      string `json:"next"`
	Recovered bool   `json:"recovered"`
}

func (c *pollConn) complete(st *httpStream) {
	body := c.buf
	c.buf = c.buf[:0]
	if cap(c.buf) > 64<<10 {
		c.buf = nil // do not keep a large answer's buffer for an idle poll
	}
	if st.status != 200 {
		c.fail(st, fmt.Errorf("poll: %w", statusError(st.status, body)))
		return
	}
	next, ok := pollNext(body)
	if !ok {
		c.fail(st, fmt.Errorf("poll: answer without next position: %.200s", body))
		return
	}
	c.f.subscribed(c.s) // no-op after the first answer
	c.f.deliver(c.s, body)
	if !bytes.Contains(body, []byte(`"recovered":true`)) {
		c.f.noteErr(fmt.Errorf("poll: position not recovered: %.200s", body))
	}
	req := requestHead(c.host, "/poll?"+c.query+"&since="+url.QueryEscape(next))
	if st.closing {
		// The server's close ends this connection. Closing it here, on the
		// event loop, while the dial below may take its descriptor number,
		// was seen to end the new connection instead.
		st.retired.Store(true)
		// Dialing blocks, and this runs on the event loop.
		c.f.goDial(func() { c.reconnect(req) })
		return
	}
	if err := st.send(req); err != nil {
		c.fail(st, fmt.Errorf("poll: %w", err))
	}
}

// reconnect sends the next poll on a new connection, the server having
// closed the last one after its answer.
func (c *pollConn) reconnect(req []byte) {
	st, err := dialStream(c.f.ctx, c.f.loop, c.s.idx, c, req)
	if err != nil {
		c.f.closed(c.s, fmt.Errorf("poll: reconnect: %w", err))
		return
	}
	c.st.Store(st)
	// A close by the bench while dialing found the old connection.
	if state := c.s.state.Load(); state == stateClosing || state == stateLost {
		st.close()
	}
}

func (c *pollConn) fail(st *httpStream, err error) {
	if c.s.state.Load() == stateSubscribed {
		c.f.noteErr(err)
	}
	c.f.failed(c.s, err)
	st.close()
}

func (c *pollConn) closed(st *httpStream, err error) {
	if !st.retired.Load() {
		c.f.closed(c.s, err)
	}
}

// pollNext finds the "next" position in an answer. It sits after the
// publications, so it is looked for from the end; the answer is decoded
// properly only when that fails.
func pollNext(body []byte) (string, bool) {
	const key = `"next":"`
	if i := bytes.LastIndex(body, []byte(key)); i >= 0 {
		rest := body[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			return string(rest[:j]), true
		}
	}
	var a pollAnswer
	if json.Unmarshal(body, &a) != nil || a.Next == "" {
		return "", false
	}
	return a.Next, true
}
