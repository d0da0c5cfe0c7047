package server

import (
	"io"
	"net/http"
	"time"
)

// bodyDeadline bounds the time a request's body may take to arrive, on
// every path: a client that sends its headers and then trickles the body
// would otherwise hold its connection forever wherever the answer does not
// read the body (a refused key, token or origin, an unknown path), because
// net/http then reads what is left of it, with no deadline, before it can
// reuse or close the connection. The deadline is cleared once the body has
// been read to its end, so a handler that keeps working afterwards keeps its
// request context (net/http cancels it when a read on the connection
// fails). Requests without a body are untouched: streams and long polls are
// GETs.
func bodyDeadline(next http.Handler, limit time.Duration) http.Handler {
	if limit <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			// Writers that cannot take a deadline (test recorders) serve
			// without one: the bound is against network peers.
			if rc.SetReadDeadline(time.Now().Add(limit)) == nil {
				r.Body = &clearAtEOF{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clearAtEOF lifts the read deadline once the body has been read whole.
type clearAtEOF struct {
	io.ReadCloser
	rc      *http.ResponseController
	cleared bool
}

func (b *clearAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.cleared {
		b.cleared = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
