package client

import (
	"fmt"
	"strings"

	"github.com/heraldrt/herald/internal/protocol"
)

// StreamPosition is a point in one channel's stream: "everything up to
// Offset of this generation of the channel has been seen". The Epoch names
// the generation; it changes only when the channel's history is lost, so a
// position from another epoch can never be resumed. The zero value means
// "no position".
type StreamPosition struct {
	Epoch  string
	Offset uint64
}

// IsZero reports whether p is the zero value, which names no position.
func (p StreamPosition) IsZero() bool { return p == StreamPosition{} }

// String formats p as "<epoch>-<offset>", the one-channel form of the
// position strings of docs/protocol.md (SSE event ids, poll "next").
func (p StreamPosition) String() string {
	return protocol.FormatPositions([]protocol.StreamPosition{{Epoch: p.Epoch, Offset: p.Offset}})
}

// ParsePosition parses a one-channel position string, "<epoch>-<offset>".
func ParsePosition(s string) (StreamPosition, error) {
	ps, err := protocol.ParsePositions(s, 1)
	if err != nil {
		return StreamPosition{}, fmt.Errorf("client: position %q: %w", s, err)
	}
	return StreamPosition{Epoch: ps[0].Epoch, Offset: ps[0].Offset}, nil
}

// FormatPositions formats the positions of several channels as one string,
// "<epoch>-<offset>.<epoch>-<offset>...", with the channels in canonical
// (bytewise sorted) order: the form of SSE event ids and poll positions.
func FormatPositions(positions map[string]StreamPosition) string {
	channels := make([]string, 0, len(positions))
	for ch := range positions {
		channels = append(channels, ch)
	}
	channels = protocol.CanonicalChannels(channels)
	ps := make([]protocol.StreamPosition, len(channels))
	for i, ch := range channels {
		ps[i] = protocol.StreamPosition{Epoch: positions[ch].Epoch, Offset: positions[ch].Offset}
	}
	return protocol.FormatPositions(ps)
}

// ParsePositions parses a position string made by FormatPositions (or an SSE
// event id, or a poll "next") for the given channels, in any order. The
// string must hold exactly one entry per distinct channel.
func ParsePositions(s string, channels ...string) (map[string]StreamPosition, error) {
	canon := protocol.CanonicalChannels(channels)
	ps, err := protocol.ParsePositions(s, len(canon))
	if err != nil {
		return nil, fmt.Errorf("client: positions %q for %s: %w", s, strings.Join(canon, ", "), err)
	}
	out := make(map[string]StreamPosition, len(canon))
	for i, ch := range canon {
		out[ch] = StreamPosition{Epoch: ps[i].Epoch, Offset: ps[i].Offset}
	}
	return out, nil
}

// positionsString formats positions listed in canonical channel order.
func positionsString(ps []StreamPosition) string {
	wire := make([]protocol.StreamPosition, len(ps))
	for i, p := range ps {
		wire[i] = protocol.StreamPosition{Epoch: p.Epoch, Offset: p.Offset}
	}
	return protocol.FormatPositions(wire)
}

// parsePositionsList parses a position string for n channels in canonical
// order.
func parsePositionsList(s string, n int) ([]StreamPosition, error) {
	ps, err := protocol.ParsePositions(s, n)
	if err != nil {
		return nil, err
	}
	out := make([]StreamPosition, n)
	for i, p := range ps {
		out[i] = StreamPosition{Epoch: p.Epoch, Offset: p.Offset}
	}
	return out, nil
}
