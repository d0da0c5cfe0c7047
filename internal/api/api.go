// Package api serves Herald's HTTP APIs: the server API that backends call
// under /api/ with an API key, and the client endpoints (publish, history,
// presence) that clients on one-way transports (SSE, polling) use for what
// WebSocket clients send as commands.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// Prefix is the path the server API is mounted under.
const Prefix = "/api/"

// Config configures the server API.
type Config struct {
	Node *node.Node
	// Key is the API key callers present as "Authorization: apikey <Key>".
	// When it is empty the API is open in Dev mode and closed otherwise:
	// every call is answered 401.
	Key    string
	Dev    bool
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body; larger ones are answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// LogLevel is the server's log level, which /api/log_level reads and
	// sets; nil answers that call with ErrNotAvailable.
	LogLevel *slog.LevelVar
}

// Handler serves the server API at Prefix+<method>: every method is a POST
// with a JSON body, answered with a JSON result or a JSON error body
// ({"error":{"code","message"}}) and the matching status.
type Handler struct {
	node *node.Node
	log  *slog.Logger
	// key is how calls are admitted; SetKey swaps it while the API serves.
	key     atomic.Pointer[apiKey]
	maxBody int64
	// level is what /api/log_level reads and sets; nil: not settable.
	level  *slog.LevelVar
	routes map[string]http.HandlerFunc
	// batchCalls holds *batchCall between /api/batch calls.
	batchCalls sync.Pool
}

// apiKey is the key in force and how it admits calls.
type apiKey struct {
	access  keyAccess
	dev     bool
	keyHash [sha256.Size]byte
}

// keyAccess is how a Handler admits calls, fixed at construction.
type keyAccess uint8

const (
	accessKey    keyAccess = iota // a key is configured and must match
	accessOpen                    // dev mode without a key: anyone
	accessClosed                  // no key outside dev mode: nobody
)

// New returns the server API handler. It logs a warning when the API is open
// to anyone (dev mode without a key) or closed to everyone (no key).
func New(cfg Config) *Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{node: cfg.Node, log: log, maxBody: cfg.MaxBodyBytes, level: cfg.LogLevel}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	h.key.Store(&apiKey{dev: cfg.Dev})
	h.SetKey(cfg.Key)
	h.routes = map[string]http.HandlerFunc{
		"publish":        serve(h.maxBody, h.publish),
		"broadcast":      serve(h.maxBody, h.broadcast),
		"history":        serve(h.maxBody, h.history),
		"channels":       serve(h.maxBody, h.channels),
		"info":           serve(h.maxBody, h.info),
		"presence":       serve(h.maxBody, h.presence),
		"presence_stats": serve(h.maxBody, h.presenceStats),
		"batch":          h.serveBatch,
		"disconnect":     serve(h.maxBody, h.disconnect),
		"connections":    serve(h.maxBody, h.connections),
		"send_user":      serve(h.maxBody, h.sendUser),
		"log_level":      serve(h.maxBody, h.logLevel),
	}
	return h
}

// ServeHTTP authenticates the call, then routes it by the path after Prefix.
// Authentication comes first so that callers without a key learn nothing
// about which endpoints exist.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.authorize(r); err != nil {
		w.Header().Set("WWW-Authenticate", "apikey")
		protocol.WriteHTTPError(w, err)
		return
	}
	route, ok := h.routes[strings.TrimPrefix(r.URL.Path, Prefix)]
	if !ok {
		protocol.WriteHTTPError(w, protocol.ErrMethodNotFound.With("no API endpoint %q", truncate(r.URL.Path, 64)))
		return
	}
	if !requirePost(w, r) {
		return
	}
	route(w, r)
}

// requirePost answers 405 to anything but POST, reporting whether r is one.
func requirePost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	writeErrorStatus(w, http.StatusMethodNotAllowed, protocol.ErrBadRequest.With("method %s not allowed, use POST", r.Method))
	return false
}

// SetKey replaces the API key while the API serves, with Config.Key's
// meaning, logging the same warnings as New for an open or closed API.
func (h *Handler) SetKey(key string) {
	k := &apiKey{dev: h.key.Load().dev}
	switch {
	case key != "":
		// Hashing both sides makes the comparison constant-time in the key's
		// length too, which subtle.ConstantTimeCompare alone is not.
		k.keyHash = sha256.Sum256([]byte(key))
	case k.dev:
		k.access = accessOpen
		h.log.Warn("server API is open to anyone: dev mode and no api_key configured")
	default:
		k.access = accessClosed
		h.log.Warn("server API is disabled: no api_key configured, every call is answered 401")
	}
	h.key.Store(k)
}

func (h *Handler) authorize(r *http.Request) error {
	k := h.key.Load()
	switch k.access {
	case accessOpen:
		return nil
	case accessClosed:
		return protocol.ErrUnauthorized.With("no API key is configured on this server; set api_key (HERALD_API_KEY) to enable the server API")
	}
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "apikey") {
		return protocol.ErrUnauthorized.With(`missing "Authorization: apikey <key>" header`)
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	if subtle.ConstantTimeCompare(got[:], k.keyHash[:]) != 1 {
		return protocol.ErrUnauthorized.With("invalid API key")
	}
	return nil
}

// serve adapts an endpoint to http.HandlerFunc: it decodes the body into a
// Req, runs fn and writes its result or error.
func serve[Req any](maxBody int64, fn func(context.Context, *Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			protocol.WriteHTTPError(w, err)
			return
		}
		res, err := fn(r.Context(), &req)
		if err != nil {
			protocol.WriteHTTPError(w, err)
			return
		}
		writeJSON(w, res)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
