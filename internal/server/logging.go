package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
)

// NewLogger returns a logger writing to w in c.LogFormat, at the level of
// c.LogLevelVar, which it creates when nil and sets to c.LogLevel: reloads
// and /api/log_level change that variable, and with it the level of every
// logger derived from this one. Invalid values, which Validate reports,
// fall back to info and text. Lines logged with a request's context carry
// its request id.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	if c.LogLevelVar == nil {
		c.LogLevelVar = new(slog.LevelVar)
	}
	c.LogLevelVar.Set(level)
	opts := &slog.HandlerOptions{Level: c.LogLevelVar}
	if c.LogFormat == "json" {
		return slog.New(requestIDHandler{slog.NewJSONHandler(w, opts)})
	}
	return slog.New(requestIDHandler{slog.NewTextHandler(w, opts)})
}

// RequestIDHeader carries a request's id: taken from the request when the
// client or a proxy sent a sane one, else generated, and echoed in the
// response, so one id follows a request through proxies, logs and answers.
const RequestIDHeader = "X-Request-ID"

type requestIDKey struct{}

// RequestID returns the id withRequestID gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID gives every request an id, in its context and its
// response's header, and logs it at debug level with what was asked.
func withRequestID(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !saneRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		log.DebugContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// saneRequestID accepts inbound ids of 1 to 64 letters, digits, '-', '_',
// '.' or ':': enough for UUIDs and common tracing ids, and nothing that
// could forge log lines or bloat them.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestIDHandler adds the request id of a record's context to the record,
// so a line logged with a request's context names its request wherever the
// logger came from.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// withRequestIDs makes log add request ids to lines logged with a request's
// context, unless it does already.
func withRequestIDs(log *slog.Logger) *slog.Logger {
	if _, ok := log.Handler().(requestIDHandler); ok {
		return log
	}
	return slog.New(requestIDHandler{log.Handler()})
}
