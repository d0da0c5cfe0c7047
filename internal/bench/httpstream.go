package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// httpStream is one HTTP/1.1 client connection on the event loop whose
// response bodies reach a streamHandler piece by piece as they arrive, which
// SSE needs (its response never ends) and long polling uses to keep one
// connection for all its polls.
//
// nbio's own client (nbhttp.ClientConn) buffers a whole response before it
// calls back, so it cannot stream; its HTTP parser can, given a Processor of
// our own: this type is that Processor, and the parser runs on the event
// loop exactly as it does inside nbhttp.ClientConn. A chunked body arrives
// one chunk at a time, a sized one whole. A body delimited by the end of the
// connection (no Content-Length, not chunked: how a server streams events
// with "Connection: close") is one nbhttp's parser does not read, so from
// the end of such a response's head the connection's bytes bypass it, as
// after a protocol upgrade, and go to the handler as they come.
type httpStream struct {
	nbc    *nbio.Conn
	parser *nbhttp.Parser
	h      streamHandler

	// The response being read, on the event loop only.
	status  int
	framed  bool // it has a Content-Length or chunked encoding
	closing bool // it has "Connection: close": the server ends the connection after it

	// retired is set by the handler once it is done with the connection and
	// expects it to close; the handler's closed ignores that close.
	retired atomic.Bool
}

// streamHandler receives one connection's responses, on the event loop.
type streamHandler interface {
	// body receives the next piece of the current response's body; data is
	// valid only during the call.
	body(st *httpStream, data []byte)
	// complete is called at the end of each response.
	complete(st *httpStream)
	// closed is called once, when the connection ends.
	closed(st *httpStream, err error)
}

var _ nbhttp.Processor = (*httpStream)(nil)

// dialStream opens connection number idx to the server and sends request,
// the raw bytes of a request head.
func dialStream(ctx context.Context, l *loop, idx int, h streamHandler, request []byte) (*httpStream, error) {
	conn, err := l.dialer.dial(ctx, idx)
	if err != nil {
		return nil, err
	}
	nbc, err := nbio.NBConn(conn)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bench: poll connection: %w", err)
	}
	st := &httpStream{nbc: nbc, h: h}
	st.parser = nbhttp.NewParser(nbc, l.engine, st, true, nbc.Execute)
	st.parser.OnClose(func(_ *nbhttp.Parser, err error) { h.closed(st, err) })
	nbc.SetSession(st.parser)
	nbc.OnData(l.engine.DataHandler)
	if _, err := l.engine.AddConn(nbc); err != nil {
		_ = nbc.Close()
		return nil, fmt.Errorf("bench: poll connection: %w", err)
	}
	if _, err := nbc.Write(request); err != nil {
		_ = nbc.Close()
		return nil, err
	}
	return st, nil
}

// send writes another request on the connection.
func (st *httpStream) send(request []byte) error {
	_, err := st.nbc.Write(request)
	return err
}

func (st *httpStream) close() { _ = st.nbc.Close() }

// The Processor methods, called by the parser on the event loop.

func (st *httpStream) OnMethod(*nbhttp.Parser, string)                {}
func (st *httpStream) OnURL(*nbhttp.Parser, string) error             { return nil }
func (st *httpStream) OnProto(*nbhttp.Parser, string) error           { return nil }
func (st *httpStream) OnContentLength(*nbhttp.Parser, int)            {}
func (st *httpStream) OnTrailerHeader(*nbhttp.Parser, string, string) {}
func (st *httpStream) Close(*nbhttp.Parser, error)                    {}
func (st *httpStream) Clean(*nbhttp.Parser)                           {}

func (st *httpStream) OnBody(_ *nbhttp.Parser, data []byte) error {
	st.h.body(st, data)
	return nil
}

func (st *httpStream) OnStatus(_ *nbhttp.Parser, code int, _ string) {
	st.status, st.framed, st.closing = code, false, false
}

func (st *httpStream) OnHeader(_ *nbhttp.Parser, key, value string) {
	switch {
	case strings.EqualFold(key, "Content-Length") || strings.EqualFold(key, "Transfer-Encoding"):
		st.framed = true
	case strings.EqualFold(key, "Connection") && strings.EqualFold(strings.TrimSpace(value), "close"):
		st.closing = true
	}
}

func (st *httpStream) OnComplete(p *nbhttp.Parser) {
	if !st.framed && st.status >= 200 && st.status != http.StatusNoContent && st.status != http.StatusNotModified {
		// The body runs to the end of the connection: read it raw.
		p.ParserCloser = untilClose{st}
		return
	}
	st.h.complete(st)
}

// untilClose takes a connection's bytes once its response body runs to the
// connection's end. The parser stays the connection's session, so its close
// still reaches the handler.
type untilClose struct{ st *httpStream }

func (u untilClose) UnderlayerConn() net.Conn { return u.st.nbc }
func (u untilClose) CloseAndClean(error)      {}
func (u untilClose) Parse(data []byte) error {
	u.st.h.body(u.st, data)
	return nil
}

// requestHead is a GET request head for path on host, kept alive.
func requestHead(host, pathAndQuery string, extra ...string) []byte {
	b := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n", pathAndQuery, host)
	for _, h := range extra {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// statusError describes an unexpected response status and its body.
func statusError(status int, body []byte) error {
	return fmt.Errorf("HTTP %d %s: %.200s", status, http.StatusText(status), body)
}
