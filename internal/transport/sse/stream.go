package sse

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// stream writes one SSE response and tracks the position of each of its
// channels, from which every event id is made. It is used by the handler
// goroutine only.
type stream struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	cfg      *Config
	channels []string                  // canonical, so sorted
	resume   []protocol.StreamPosition // from the request; nil for "from now"
	// pos is the position of every channel after the last event written; it
	// is nil until the first batch, which holds each channel's start.
	pos []protocol.StreamPosition
	// scratch holds an event's field lines; items is the drain buffer. Both
	// are reused from batch to batch.
	scratch []byte
	items   []node.Item
	// deadlineWarned records that the ResponseWriter cannot take write
	// deadlines, so the warning is logged once per stream.
	deadlineWarned bool
}

func newStream(w http.ResponseWriter, cfg *Config, channels []string, resume []protocol.StreamPosition) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), cfg: cfg, channels: channels, resume: resume}
}

// begin sends the response headers and the retry hint.
func (s *stream) begin() error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx not to buffer the response, which would hold events back.
	h.Set("X-Accel-Buffering", "no")
	if err := s.deadline(); err != nil {
		return err
	}
	s.w.WriteHeader(http.StatusOK)
	s.scratch = append(s.scratch[:0], "retry: "...)
	s.scratch = strconv.AppendInt(s.scratch, s.cfg.Retry.Milliseconds(), 10)
	s.scratch = append(s.scratch, "\n\n"...)
	if _, err := s.w.Write(s.scratch); err != nil {
		return err
	}
	return s.rc.Flush()
}

// end starts the stream only to close it at once with d.
func (s *stream) end(d *protocol.Disconnect) {
	if s.begin() == nil {
		_ = s.write(nil, d)
	}
}

// write writes a drained batch, then the disconnect event if d is not nil,
// and flushes. The whole batch shares one write deadline: a batch is bounded
// by the session's queue limit.
func (s *stream) write(items []node.Item, d *protocol.Disconnect) error {
	if err := s.deadline(); err != nil {
		return err
	}
	if s.pos == nil && len(items) > 0 {
		s.startPositions(items)
	}
	for i := range items {
		if err := s.writeItem(&items[i]); err != nil {
			return err
		}
	}
	if d != nil {
		frame := protocol.EncodePush(protocol.DisconnectPush{Type: protocol.PushDisconnect, Disconnect: *d})
		if err := s.event(protocol.PushDisconnect, false, frame); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// startPositions sets every channel's position before the first event.
// SubscribeStream queued an ItemSubscribed per channel before the writer
// started, so all of them are in the first batch, but possibly behind other
// channels' publications, whose ids must already name every channel.
//
// A resuming client's own positions are kept until a channel's subscribed
// event is written: if the connection drops before that event reaches the
// client, it resumes from where it was and is told again whether that
// position could be recovered. A client that did not resume has no position
// to keep, so each channel starts from its subscribed item.
func (s *stream) startPositions(first []node.Item) {
	s.pos = make([]protocol.StreamPosition, len(s.channels))
	if s.resume != nil {
		copy(s.pos, s.resume)
		return
	}
	for i := range first {
		if first[i].Kind == node.ItemSubscribed {
			s.advance(first[i].Channel, first[i].Epoch, first[i].Offset)
		}
	}
}

// advance sets channel's position, reporting whether it changed.
func (s *stream) advance(channel, epoch string, offset uint64) bool {
	i, ok := slices.BinarySearch(s.channels, channel)
	p := protocol.StreamPosition{Epoch: epoch, Offset: offset}
	if !ok || s.pos[i] == p {
		return false
	}
	s.pos[i] = p
	return true
}

func (s *stream) writeItem(it *node.Item) error {
	switch it.Kind {
	case node.ItemSubscribed:
		s.advance(it.Channel, it.Epoch, it.Offset)
		return s.event("subscribed", true, it.Frame)
	case node.ItemPublication:
		// An ephemeral publication (or one in a namespace without history)
		// is queued with its subscription's current position, so it moves
		// nothing: it carries no id and leaves the client's Last-Event-ID as
		// it was.
		return s.event("", s.advance(it.Channel, it.Epoch, it.Offset), it.Frame)
	default:
		// Replies have no push name and exist only on bidirectional
		// sessions; anything else (join, leave) is a named event.
		if it.Push == "" {
			return nil
		}
		return s.event(it.Push, false, it.Frame)
	}
}

// event writes one event. Publications go without an event name, so they
// reach EventSource.onmessage.
func (s *stream) event(name string, withID bool, frame []byte) error {
	b := s.scratch[:0]
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	if withID {
		if id, ok := s.id(); ok {
			b = append(b, "id: "...)
			b = append(b, id...)
			b = append(b, '\n')
		}
	}
	b = append(b, "data: "...)
	s.scratch = b
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if err := s.data(frame); err != nil {
		return err
	}
	_, err := io.WriteString(s.w, "\n\n")
	return err
}

// id formats the current positions. It reports false while some channel has
// no known epoch (a namespace whose engine assigns none without history):
// such an id could not be parsed back, and a reconnect with it would be
// refused, whereas omitting it keeps the client's previous Last-Event-ID.
func (s *stream) id() (string, bool) {
	for _, p := range s.pos {
		if p.Epoch == "" {
			return "", false
		}
	}
	return protocol.FormatPositions(s.pos), true
}

// data writes frame as the value of a data field. Frames never hold raw line
// breaks (publication data is compacted when accepted), but one that did
// would end the field early and corrupt the stream; it is then written as
// several data lines, which EventSource joins back with "\n" (JSON whitespace).
func (s *stream) data(frame []byte) error {
	if !bytes.ContainsAny(frame, "\r\n") {
		_, err := s.w.Write(frame)
		return err
	}
	s.cfg.Logger.Error("sse frame contains a raw line break; sending it as several data lines", "bytes", len(frame))
	for {
		i := bytes.IndexAny(frame, "\r\n")
		if i < 0 {
			break
		}
		if _, err := s.w.Write(frame[:i]); err != nil {
			return err
		}
		if _, err := io.WriteString(s.w, "\ndata: "); err != nil {
			return err
		}
		if frame[i] == '\r' && i+1 < len(frame) && frame[i+1] == '\n' {
			i++
		}
		frame = frame[i+1:]
	}
	_, err := s.w.Write(frame)
	return err
}

// keepAlive writes a comment, which EventSource ignores and proxies see as
// traffic.
func (s *stream) keepAlive() error {
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := io.WriteString(s.w, ": keepalive\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline bounds the writes that follow. A ResponseWriter that cannot take
// deadlines (a middleware without Unwrap) still streams, but a client that
// stops reading then holds its handler until TCP gives up.
func (s *stream) deadline() error {
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

// recycle keeps the drain buffer for the next batch without holding on to
// its frames, and lets a big one go so an idle stream holds little memory.
func (s *stream) recycle(items []node.Item) {
	clear(items)
	if cap(items) > 64 {
		s.items = nil
		return
	}
	s.items = items[:0]
}
