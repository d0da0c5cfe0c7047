// Package poll serves Herald's long and short polling. A poll names its
// channels and the position it has reached; the answer holds the
// publications after that position and the position to poll from next. The
// server keeps nothing between polls, so any node answers any poll and no
// sticky sessions are needed.
package poll

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// writeTimeout bounds writing one response.
const writeTimeout = 30 * time.Second

// Config configures a Handler.
type Config struct {
	// Node answers the polls. It is required.
	Node *node.Node
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Handler serves GET /poll?channel=A&channel=B&since=<position>&timeout=<seconds>.
// Without since, the poll starts from now; timeout is how many whole seconds
// to wait for a publication (0, the default, answers at once; at most
// node.MaxPollTimeout). The answer is node.PollResult as JSON:
// {"publications":[...],"next":"...","recovered":true,"unrecovered":[...]}.
// Errors are JSON bodies from protocol.WriteHTTPError.
//
// A started Handler (Start) moves a long poll that has to wait over plain
// HTTP/1.1 to an event loop, where it holds no goroutine; that response
// closes the connection. TLS and HTTP/2 polls wait on their handler
// goroutine, as do all polls of a Handler that is not started.
type Handler struct {
	cfg Config
	// onLoop is set by Start; without it every poll waits on its goroutine.
	onLoop atomic.Pointer[loopPolls]
}

// New returns a Handler for cfg. It panics if cfg.Node is nil, like
// http.Handle does for a nil handler: that is a wiring bug, not a runtime
// condition.
func New(cfg Config) *Handler {
	if cfg.Node == nil {
		panic("poll: Config.Node is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer, errors included, depends on the moment it is given; a
	// cached one would hand a client stale positions.
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write(protocol.ErrorBody(protocol.ErrBadRequest.With("method %.16q not allowed, use GET", r.Method)))
		return
	}
	q := r.URL.Query()
	timeout, err := parseTimeout(q.Get("timeout"))
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	cred, err := h.cfg.Node.RequestCredentials(r.Context())
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	if !cred.ExpiresAt.IsZero() {
		// Answer while the token is still good, so the next poll is the one
		// that brings a fresh token.
		timeout = max(0, min(timeout, time.Until(cred.ExpiresAt)))
	}
	req := node.PollRequest{
		Channels:           q["channel"],
		Since:              q.Get("since"),
		Timeout:            timeout,
		SubscriptionTokens: q["sub_token"],
	}
	var res *node.PollResult
	if lp := h.onLoop.Load(); lp != nil && timeout > 0 && r.TLS == nil && r.ProtoMajor == 1 {
		p := &loopPoll{owner: lp, log: h.cfg.Logger}
		p.checker.Init(lp.workers, p.checkTurn)
		var pw *node.PollWait
		res, pw, err = h.cfg.Node.StartPoll(r.Context(), cred, req, p.wake)
		if pw != nil {
			p.wait = pw
			if p.serveOnLoop(w, timeout) {
				return
			}
			// Not hijackable (a wrapping ResponseWriter): wait here instead,
			// starting over, since the wait's notify leads to the loop.
			pw.Close()
			res, err = h.cfg.Node.Poll(r.Context(), cred, req)
		}
	} else {
		res, err = h.cfg.Node.Poll(r.Context(), cred, req)
	}
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	// Publication data is JSON the server accepted and compacted; Marshal
	// does not HTML-escape, so it passes through byte for byte.
	body, err := protocol.Marshal(res)
	if err != nil {
		h.cfg.Logger.Error("poll response does not encode", "err", err)
		protocol.WriteHTTPError(w, protocol.ErrInternal)
		return
	}
	// Bound the write so a client that stops reading frees this handler; a
	// writer that cannot take deadlines just writes without one.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, err := w.Write(body); err != nil {
		h.cfg.Logger.Debug("poll response not delivered", "err", err)
	}
}

// parseTimeout reads the timeout parameter: whole seconds from 0 to
// node.MaxPollTimeout, 0 when absent.
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	limit := int64(node.MaxPollTimeout / time.Second)
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs < 0 || secs > limit {
		return 0, protocol.ErrBadRequest.With("timeout must be whole seconds from 0 to %d, got %.16q", limit, s)
	}
	return time.Duration(secs) * time.Second, nil
}
