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

// decodeBody decodes the JSON request body into v. It reads at most maxBytes
// (ErrMessageTooLarge beyond), rejects unknown fields and trailing data
// (ErrBadRequest) so that a misspelt field fails loudly instead of being
// ignored, and treats an empty body as an empty object.
//
// The server bounds the time a body may take to arrive (read_header_timeout
// from the request's start, internal/server's bodyDeadline); a body that
// misses it fails here with ErrBadRequest, and the server closes the
// connection after the answer.
func decodeBody(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	err := decodeJSON(http.MaxBytesReader(w, r.Body, maxBytes), v)
	if err == nil {
		return nil
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return protocol.ErrMessageTooLarge.With("request body exceeds %d bytes", maxBytes)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return protocol.ErrBadRequest.With("request body not received within %v", bodyTimeout(r))
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

// bodyTimeout is how long r's body may take to arrive, for the error
// message: the serving http.Server's ReadHeaderTimeout.
func bodyTimeout(r *http.Request) time.Duration {
	if s, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		return s.ReadHeaderTimeout
	}
	return 0
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
