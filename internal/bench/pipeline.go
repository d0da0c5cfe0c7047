package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// maxInFlight bounds the calls one publishing connection has written and
// not yet had answered; a loop that reaches it waits, and that wait shows
// in the publish wait and the latency.
const maxInFlight = 256

// callTimeout bounds the wait for one answer, as http.Client.Timeout did.
const callTimeout = 30 * time.Second

// pipeConn is one publishing loop's HTTP/1.1 connection. Calls are written
// as soon as they are made, without waiting for the answer to the one
// before (HTTP/1.1 pipelining; net/http's server answers a connection's
// requests one at a time, in order), and a reader matches the answers to
// the calls in order. A loop that waited for each answer before its next
// call made every publication queued meanwhile wait a whole round trip
// first; pipelined, a publication waits only for its turn on the server.
//
// net/http writes the requests (Request.Write) and parses the answers
// (ReadResponse): the bench only orders them.
type pipeConn struct {
	conn    net.Conn
	bw      *bufio.Writer
	pending chan *pipeCall
	broken  atomic.Bool
	readerG sync.WaitGroup
}

// pipeCall is one written call waiting for its answer.
type pipeCall struct {
	req  *http.Request
	done func(status int, body []byte, err error)
}

func dialPipe(ctx context.Context, base string) (*pipeConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	pc := &pipeConn{
		conn:    conn,
		bw:      bufio.NewWriterSize(conn, 64<<10),
		pending: make(chan *pipeCall, maxInFlight),
	}
	pc.readerG.Go(pc.read)
	return pc, nil
}

// call writes req and returns once it is on the wire (or failed); done
// runs on the reader with the answer.
func (pc *pipeConn) call(req *http.Request, done func(status int, body []byte, err error)) {
	c := &pipeCall{req: req, done: done}
	pc.pending <- c // the reader fails it if the connection breaks
	if err := req.Write(pc.bw); err != nil {
		pc.fail()
		return
	}
	if err := pc.bw.Flush(); err != nil {
		pc.fail()
	}
}

// fail marks the connection broken and closes it, so the reader fails
// every call still waiting on it.
func (pc *pipeConn) fail() {
	pc.broken.Store(true)
	pc.conn.Close()
}

// read answers the pending calls in order until close is called; once the
// connection breaks it fails the rest without reading.
func (pc *pipeConn) read() {
	br := bufio.NewReaderSize(pc.conn, 64<<10)
	var broken error
	for c := range pc.pending {
		if broken != nil {
			c.done(0, nil, broken)
			continue
		}
		status, body, closing, err := pc.readAnswer(br, c.req)
		if err != nil {
			broken = fmt.Errorf("bench: publishing connection: %w", err)
			pc.fail()
			c.done(0, nil, broken)
			continue
		}
		c.done(status, body, nil)
		if closing {
			// The calls written behind this answer will not be answered.
			broken = errors.New("bench: the server closed the publishing connection")
			pc.fail()
		}
	}
}

func (pc *pipeConn) readAnswer(br *bufio.Reader, req *http.Request) (status int, body []byte, closing bool, err error) {
	if err := pc.conn.SetReadDeadline(time.Now().Add(callTimeout)); err != nil {
		return 0, nil, false, err
	}
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(io.LimitReader(res.Body, 16<<20))
	res.Body.Close()
	return res.StatusCode, body, res.Close, err
}

// close waits for the answers to every call written, then closes the
// connection.
func (pc *pipeConn) close() {
	close(pc.pending)
	pc.readerG.Wait()
	pc.conn.Close()
}

// newCallRequest builds one POST to the server API.
func newCallRequest(ctx context.Context, base, path, apiKey string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("Authorization", "apikey "+apiKey)
	}
	return req, nil
}
