package api

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// defaultBodyTimeout bounds the time to send a request body when the
// serving http.Server has no ReadHeaderTimeout to take the bound from.
const defaultBodyTimeout = 10 * time.Second

// decodeBody decodes the JSON request body into v. It reads at most maxBytes
// (ErrMessageTooLarge beyond), rejects unknown fields and trailing data
// (ErrBadRequest) so that a misspelt field fails loudly instead of being
// ignored, and treats an empty body as an empty object.
//
// The body must arrive within the server's ReadHeaderTimeout of the call
// (defaultBodyTimeout without one), or decodeBody fails with ErrBadRequest
// and the connection is closed after the answer. net/http bounds only the
// headers: its ReadTimeout would also cut SSE streams and long polls, so a
// client trickling a body would otherwise hold its connection forever.
func decodeBody(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	limit := bodyTimeout(r)
	rc := http.NewResponseController(w)
	timedOut := false
	// Writers that cannot take a deadline (test recorders) are read without
	// one: the bound is against network peers.
	if rc.SetReadDeadline(time.Now().Add(limit)) == nil {
		defer func() {
			// A timed-out connection keeps its expired deadline, so that
			// net/http cannot block draining the rest of the trickle.
			if !timedOut {
				_ = rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	err := decodeJSON(http.MaxBytesReader(w, r.Body, maxBytes), v)
	if err == nil {
		return nil
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return protocol.ErrMessageTooLarge.With("request body exceeds %d bytes", maxBytes)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		timedOut = true
		if r.ProtoMajor == 1 {
			// What is left of the body must not be read as the next
			// request. (On HTTP/2 the deadline ends the stream alone; a
			// close would end every stream of the connection.)
			w.Header().Set("Connection", "close")
		}
		return protocol.ErrBadRequest.With("request body not received within %v", limit)
	}
	return protocol.ErrBadRequest.With("request body: %v", err)
}

// decodeJSON decodes the one JSON value of body into v.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	// A second value, or garbage after the first, is a malformed body.
	if _, err = dec.Token(); errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		err = errors.New("data after the JSON object")
	}
	return err
}

// bodyTimeout is how long r's body may take to arrive: the serving
// http.Server's ReadHeaderTimeout, the read_header_timeout option.
func bodyTimeout(r *http.Request) time.Duration {
	if s, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return defaultBodyTimeout
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := protocol.Marshal(v)
	if err != nil {
		protocol.WriteHTTPError(w, protocol.ErrInternal.With("encode response: %v", err))
		return
	}
	setJSONHeaders(w)
	_, _ = w.Write(append(b, '\n'))
}

// writeErrorStatus answers with e as the JSON error body under a status that
// protocol.HTTPStatus would not pick, such as 405.
func writeErrorStatus(w http.ResponseWriter, status int, e *protocol.Error) {
	setJSONHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(protocol.ErrorBody(e))
}

func setJSONHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// API answers describe live state; a cache must never replay them.
	h.Set("Cache-Control", "no-store")
}
