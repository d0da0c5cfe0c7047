package sse

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// sink delivers a formatted batch of the stream to the client.
type sink interface {
	send(b []byte) error
}

// stream formats one SSE response and tracks the position of each of its
// channels, from which every event id is made. One writer at a time uses it:
// the handler goroutine, or the stream's flush job on the event loop.
type stream struct {
	sink     sink
	cfg      *Config
	channels []string                  // canonical, so sorted
	resume   []protocol.StreamPosition // from the request; nil for "from now"
	// pos is the position of every channel after the last event written; it
	// is nil until the first batch, which holds each channel's start.
	pos []protocol.StreamPosition
	// out accumulates a batch; items is the drain buffer. Both are reused
	// from batch to batch.
	out   []byte
	items []node.Item
}

func newStream(cfg *Config, channels []string, resume []protocol.StreamPosition) *stream {
	return &stream{cfg: cfg, channels: channels, resume: resume}
}

// setHeaders sets the response headers of an event stream.
func setHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx not to buffer the response, which would hold events back.
	h.Set("X-Accel-Buffering", "no")
}

// appendRetry appends the retry hint that opens every stream.
func (s *stream) appendRetry() {
	s.out = append(s.out, "retry: "...)
	s.out = strconv.AppendInt(s.out, s.cfg.Retry.Milliseconds(), 10)
	s.out = append(s.out, "\n\n"...)
}

// write sends a drained batch, then the disconnect event if d is not nil,
// in one send.
func (s *stream) write(items []node.Item, d *protocol.Disconnect) error {
	if s.pos == nil && len(items) > 0 {
		s.startPositions(items)
	}
	for i := range items {
		s.appendItem(&items[i])
	}
	if d != nil {
		// Scalars only: this push always encodes.
		frame, _ := protocol.EncodePush(protocol.DisconnectPush{Type: protocol.PushDisconnect, Disconnect: *d})
		s.appendEvent(protocol.PushDisconnect, false, frame)
	}
	return s.flush()
}

// flush sends what is formatted and empties the buffer, letting a big one
// go so an idle stream holds little memory.
func (s *stream) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	err := s.sink.send(s.out)
	if cap(s.out) > 64<<10 {
		s.out = nil
	} else {
		s.out = s.out[:0]
	}
	return err
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

func (s *stream) appendItem(it *node.Item) {
	switch it.Kind {
	case node.ItemSubscribed:
		s.advance(it.Channel, it.Epoch, it.Offset)
		s.appendEvent("subscribed", true, it.Frame)
	case node.ItemPublication:
		// An ephemeral publication (or one in a namespace without history)
		// is queued with its subscription's current position, so it moves
		// nothing: it carries no id and leaves the client's Last-Event-ID as
		// it was.
		s.appendEvent("", s.advance(it.Channel, it.Epoch, it.Offset), it.Frame)
	default:
		// Replies have no push name and exist only on bidirectional
		// sessions; anything else (join, leave) is a named event.
		if it.Push != "" {
			s.appendEvent(it.Push, false, it.Frame)
		}
	}
}

// appendEvent formats one event. Publications go without an event name, so
// they reach EventSource.onmessage.
func (s *stream) appendEvent(name string, withID bool, frame []byte) {
	b := s.out
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
	b = s.appendData(b, frame)
	s.out = append(b, "\n\n"...)
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

// appendData appends frame as the value of a data field. Frames never hold
// raw line breaks (publication data is compacted when accepted), but one
// that did would end the field early and corrupt the stream; it is then
// written as several data lines, which EventSource joins back with "\n"
// (JSON whitespace).
func (s *stream) appendData(b, frame []byte) []byte {
	if !bytes.ContainsAny(frame, "\r\n") {
		return append(b, frame...)
	}
	s.cfg.Logger.Error("sse frame contains a raw line break; sending it as several data lines", "bytes", len(frame))
	for {
		i := bytes.IndexAny(frame, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, frame[:i]...)
		b = append(b, "\ndata: "...)
		if frame[i] == '\r' && i+1 < len(frame) && frame[i+1] == '\n' {
			i++
		}
		frame = frame[i+1:]
	}
	return append(b, frame...)
}

// appendKeepAlive formats a comment, which EventSource ignores and proxies
// see as traffic.
func (s *stream) appendKeepAlive() {
	s.out = append(s.out, ": keepalive\n\n"...)
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
