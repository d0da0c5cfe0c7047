// Package sse serves Herald streams over Server-Sent Events. A stock
// EventSource subscribes to the channels named in its URL; every event that
// advances the stream carries an id that is a resumable position of all its
// channels, so the browser's automatic reconnect (which sends the last id as
// Last-Event-ID) resumes every channel with nothing lost and nothing repeated.
package sse

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// Config configures a Handler. Zero durations take the defaults documented on
// each field.
type Config struct {
	// Node runs the sessions. It is required.
	Node *node.Node
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// KeepAlive is the interval of keep-alive comments, which defeat idle
	// timeouts of proxies and refresh the session's presence (15s).
	KeepAlive time.Duration
	// Retry is the reconnect delay hinted to EventSource with the stream's
	// first line (2s).
	Retry time.Duration
	// WriteTimeout bounds each batch of writes, so a client that stops
	// reading releases its handler (10s).
	WriteTimeout time.Duration
	// MaxBufferedBytes is how much a stream on the event loop lets a slowly
	// reading client leave unsent before it stops draining the session
	// (256 KiB): the rest waits in the session's bounded queue, whose
	// overflow disconnects the client as a slow consumer, and a resume's
	// backlog is read from history only as fast as the client reads. The
	// stream drains again once a quarter of it is left.
	MaxBufferedBytes int
}

// Handler serves GET /sse?channel=A&channel=B. A stream resumes from the
// Last-Event-ID header (an EventSource reconnect) or, failing that, from the
// last_event_id query parameter (a first connect that resumes); both hold
// positions as protocol.FormatPositions writes them, one per channel in
// canonical order. Requests that cannot start a stream get a JSON error body
// (protocol.WriteHTTPError).
//
// The stream opens with a retry hint, then sends, as JSON data:
//   - a "subscribed" event per channel, whose recovered and was_recovering
//     members say whether a resume continued the channel without a gap;
//   - publications as unnamed events (EventSource's onmessage);
//   - presence pushes as events named after them ("join", "leave");
//   - a final "disconnect" event when the server ends the stream.
//
// Subscribed events and stored publications carry an id: the positions of
// all the stream's channels after that event. Ephemeral publications and
// other events carry none, so they leave the client's Last-Event-ID as it was.
type Handler struct {
	cfg Config
	// onLoop is set by Start; without it every stream keeps its goroutine.
	onLoop atomic.Pointer[loopStreams]
}

// New returns a Handler for cfg. It panics if cfg.Node is nil, like
// http.Handle does for a nil handler: that is a wiring bug, not a runtime
// condition.
func New(cfg Config) *Handler {
	if cfg.Node == nil {
		panic("sse: Config.Node is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = 256 << 10
	}
	return &Handler{cfg: cfg}
}

// transport is the session's view of one SSE stream. Until a writer attaches,
// Wake only remembers that it was called; then it passes wakes on to the
// writer's notify, which must not block.
type transport struct {
	mu      sync.Mutex
	notify  func()
	pending bool
}

var _ node.Transport = (*transport)(nil)

func (t *transport) Name() string { return "sse" }

// Wake never blocks: it is called under session locks.
func (t *transport) Wake() {
	t.mu.Lock()
	notify := t.notify
	if notify == nil {
		t.pending = true
	}
	t.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// attach sets the writer, passing on a wake that came before it.
func (t *transport) attach(notify func()) {
	t.mu.Lock()
	t.notify = notify
	pending := t.pending
	t.mu.Unlock()
	if pending {
		notify()
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r.Method)
		return
	}
	channels, resume, err := parseRequest(r)
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	cred, err := h.cfg.Node.RequestCredentials(r.Context())
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	t := &transport{}
	sess, err := h.cfg.Node.NewSession(t, node.SessionOptions{Credentials: cred, Authenticated: true})
	if errors.Is(err, protocol.ErrShuttingDown) {
		// A draining node answers with a stream that says "reconnect": an
		// HTTP error would make EventSource give up for good, while its
		// retry reaches the restarted node or another one.
		d := protocol.DisconnectShutdown
		h.endResponse(w, newStream(&h.cfg, channels, resume), &d)
		return
	}
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	st := newStream(&h.cfg, channels, resume)
	if err := sess.SubscribeStream(r.Context(), channels, resume, r.URL.Query()["sub_token"]); err != nil {
		_, d := sess.Drain(nil)
		sess.Finish()
		if d != nil {
			// The session was closed while subscribing (shutdown, slow
			// consumer): the request was fine, so rather than an HTTP error,
			// which makes EventSource give up for good, tell the client to
			// reconnect and resume from the position it already holds.
			h.endResponse(w, st, d)
			return
		}
		protocol.WriteHTTPError(w, err)
		return
	}
	// Plain HTTP/1.1 streams move to the event loop, where an idle one holds
	// no goroutine and no buffers; TLS and HTTP/2 streams keep their handler
	// goroutine.
	if r.TLS == nil && r.ProtoMajor == 1 && h.serveOnLoop(w, sess, t, st) {
		return
	}
	defer sess.Finish()
	h.serveResponse(r.Context(), w, sess, t, st)
}

// parseRequest reads the canonical channel list and, when the client
// resumes, one position per channel.
func parseRequest(r *http.Request) ([]string, []protocol.StreamPosition, error) {
	q := r.URL.Query()
	channels := protocol.CanonicalChannels(q["channel"])
	if len(channels) == 0 {
		return nil, nil, protocol.ErrBadRequest.With("at least one channel parameter required")
	}
	for _, ch := range channels {
		if !protocol.ValidChannel(ch) {
			return nil, nil, protocol.ErrInvalidChannel.With("%.64q", ch)
		}
	}
	// The header wins: EventSource reconnects to the same URL, so a
	// last_event_id from the first connect is older than the header.
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id")
	}
	if last == "" {
		return channels, nil, nil
	}
	positions, err := protocol.ParsePositions(last, len(channels))
	if err != nil {
		return nil, nil, protocol.ErrInvalidPosition.With("%v", err)
	}
	return channels, positions, nil
}

func methodNotAllowed(w http.ResponseWriter, method string) {
	w.Header().Set("Allow", http.MethodGet)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write(protocol.ErrorBody(protocol.ErrBadRequest.With("method %.16q not allowed, use GET", method)))
}
