package sse

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// responseSink sends a stream through its http.ResponseWriter, each batch
// bounded by a write deadline so a client that stops reading releases the
// handler goroutine.
type responseSink struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	cfg *Config
	// deadlineWarned records that the ResponseWriter cannot take write
	// deadlines, so the warning is logged once per stream.
	deadlineWarned bool
}

func newResponseSink(w http.ResponseWriter, cfg *Config) *responseSink {
	return &responseSink{w: w, rc: http.NewResponseController(w), cfg: cfg}
}

func (s *responseSink) send(b []byte) error {
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline bounds the writes that follow. A ResponseWriter that cannot take
// deadlines (a middleware without Unwrap) still streams, but a client that
// stops reading then holds its handler until TCP gives up.
func (s *responseSink) deadline() error {
	err := s.rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if errors.Is(err, http.ErrNotSupported) {
		if !s.deadlineWarned {
			s.deadlineWarned = true
			s.cfg.Logger.Warn("sse: ResponseWriter does not support write deadlines")
		}
		return nil
	}
	return err
}

// beginResponse sends the headers and the retry hint through w.
func (h *Handler) beginResponse(w http.ResponseWriter, st *stream) error {
	sink := newResponseSink(w, &h.cfg)
	st.sink = sink
	setHeaders(w.Header())
	if err := sink.deadline(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	st.appendRetry()
	return st.flush()
}

// endResponse starts a stream only to close it at once with d.
func (h *Handler) endResponse(w http.ResponseWriter, st *stream, d *protocol.Disconnect) {
	if h.beginResponse(w, st) == nil {
		_ = st.write(nil, d)
	}
}

// serveResponse runs a stream on its handler goroutine: it writes whatever
// the session queues, keeps the connection alive while idle, and returns
// when the session is closed, a write fails or the client goes away.
func (h *Handler) serveResponse(ctx context.Context, w http.ResponseWriter, sess *node.Session, t *transport, st *stream) {
	if err := h.beginResponse(w, st); err != nil {
		h.cfg.Logger.Debug("sse stream not started", "client", sess.ID(), "err", err)
		return
	}
	wake := make(chan struct{}, 1)
	t.attach(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	// A fixed ticker rather than one reset by traffic: presence must be
	// refreshed on busy streams too.
	keepAlive := time.NewTicker(h.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		items, d := sess.Drain(st.items[:0])
		if len(items) > 0 || d != nil {
			err := st.write(items, d)
			written := len(items)
			st.recycle(items)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// The client read nothing for WriteTimeout: a slow
					// consumer, as a stalled WebSocket is, and counted so.
					sess.Close(protocol.DisconnectSlowConsumer)
				}
				h.cfg.Logger.Debug("sse write failed", "client", sess.ID(), "err", err)
				return
			}
			sess.Wrote(written, 0)
			if d != nil {
				h.cfg.Logger.Debug("sse stream closed by server", "client", sess.ID(), "code", d.Code, "reason", d.Reason)
				return
			}
		}
		select {
		case <-wake:
		case <-keepAlive.C:
			st.appendKeepAlive()
			if err := st.flush(); err != nil {
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
