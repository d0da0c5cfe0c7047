// Package sse serves Herald streams over Server-Sent Events. A stock
// EventSource subscribes to the channels named in its URL; every event that
// advances the stream carries an id that is a resumable position of all its
// channels, so the browser's automatic reconnect (which sends the last id as
// Last-Event-ID) resumes every channel with nothing lost and nothing repeated.
package sse

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
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
	return &Handler{cfg: cfg}
}

// transport is the session's view of one SSE response. Wake only signals the
// handler goroutine, which does all the writing.
type transport struct {
	wake chan struct{}
}

var _ node.Transport = (*transport)(nil)

func (t *transport) Name() string { return "sse" }

// Wake never blocks: one pending signal is enough, as the writer drains
// everything queued each time it wakes.
func (t *transport) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
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
	t := &transport{wake: make(chan struct{}, 1)}
	sess, err := h.cfg.Node.NewSession(t, node.SessionOptions{})
	if errors.Is(err, protocol.ErrShuttingDown) {
		// A draining node answers with a stream that says "reconnect": an
		// HTTP error would make EventSource give up for good, while its
		// retry reaches the restarted node or another one.
		d := protocol.DisconnectShutdown
		newStream(w, &h.cfg, channels, resume).end(&d)
		return
	}
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	defer sess.Finish()

	ctx := r.Context()
	st := newStream(w, &h.cfg, channels, resume)
	if err := sess.SubscribeStream(ctx, channels, resume); err != nil {
		if _, d := sess.Drain(nil); d != nil {
			// The session was closed while subscribing (shutdown, slow
			// consumer): the request was fine, so rather than an HTTP error,
			// which makes EventSource give up for good, tell the client to
			// reconnect and resume from the position it already holds.
			st.end(d)
			return
		}
		protocol.WriteHTTPError(w, err)
		return
	}
	if err := st.begin(); err != nil {
		h.cfg.Logger.Debug("sse stream not started", "client", sess.ID(), "err", err)
		return
	}
	h.run(ctx, sess, t, st)
}

// run is the stream's writer loop: it writes whatever the session queued,
// keeps the connection alive while idle, and returns when the session is
// closed, a write fails or the client goes away.
func (h *Handler) run(ctx context.Context, sess *node.Session, t *transport, st *stream) {
	// A fixed ticker rather than one reset by traffic: presence must be
	// refreshed on busy streams too.
	keepAlive := time.NewTicker(h.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		items, d := sess.Drain(st.items[:0])
		if len(items) > 0 || d != nil {
			err := st.write(items, d)
			st.recycle(items)
			if err != nil {
				h.cfg.Logger.Debug("sse write failed", "client", sess.ID(), "err", err)
				return
			}
			if d != nil {
				h.cfg.Logger.Debug("sse stream closed by server", "client", sess.ID(), "code", d.Code, "reason", d.Reason)
				return
			}
		}
		select {
		case <-t.wake:
		case <-keepAlive.C:
			if err := st.keepAlive(); err != nil {
				h.cfg.Logger.Debug("sse keep-alive failed", "client", sess.ID(), "err", err)
				return
			}
			sess.RefreshPresence()
			sess.ReleaseIdleQueue()
		case <-ctx.Done():
			return
		}
	}
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
