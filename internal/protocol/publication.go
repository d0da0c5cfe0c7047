package protocol

import "encoding/json"

// ClientInfo identifies a connected client in presence, join/leave events and
// publications sent by clients.
type ClientInfo struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// Publication is one message in a channel. Offset is zero for ephemeral
// publications, which are delivered live but never stored.
type Publication struct {
	Channel string            `json:"channel"`
	Offset  uint64            `json:"offset"`
	Data    json.RawMessage   `json:"data"`
	Info    *ClientInfo       `json:"info,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	// Time is the Unix time in milliseconds at which the engine accepted it.
	Time int64 `json:"time"`
}

// StreamPosition is a point in one channel's history: the last offset seen in
// a given epoch. An epoch names one generation of the history; it changes when
// that history is lost, so positions from another epoch cannot be resumed.
type StreamPosition struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}
