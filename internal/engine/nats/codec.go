package nats

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/protocol"
)

// Headers carried by the engine's messages. Stored messages keep them in
// the stream, and RePublish copies them to the delivery subject, so a
// reader and a subscriber decode the same thing.
const (
	// hdrKind marks messages that are not stored publications: kindEpoch,
	// kindRemoved, kindEphemeral, kindJoin, kindLeave. Absent on a stored
	// publication, the common case.
	hdrKind    = "Herald-Kind"
	hdrOffset  = "Herald-Offset"
	hdrEpoch   = "Herald-Epoch"
	hdrFloor   = "Herald-Floor"   // offsets at or below it are removed
	hdrExpires = "Herald-Expires" // Unix ms after which a publication is expired
	hdrTime    = "Herald-Time"    // Unix ms at which the publication was accepted
	hdrMeta    = "Herald-Meta"    // length of the JSON meta prefixed to the data

	// hdrPrev is JetStream's own optimistic-concurrency header. It is kept
	// with the stored message, so it doubles as a link to the channel's
	// previous message, which History follows backwards.
	hdrPrev = jetstream.ExpectedLastSubjSeqHeader
)

const (
	kindEpoch     = "epoch"   // starts a channel's history: offset 0 in a new epoch
	kindRemoved   = "removed" // RemoveHistory's tombstone: floor = offset
	kindEphemeral = "eph"
	kindJoin      = "join"
	kindLeave     = "leave"
)

// entry is what the engine's headers say about one message of a channel's
// history subject.
type entry struct {
	kind    string
	seq     uint64 // stream sequence, from JetStream
	prev    uint64 // stream sequence of the channel's previous message; 0 for its first
	offset  uint64
	floor   uint64
	epoch   string
	expires int64
}

// parseEntry reads the engine's headers of a stored or republished message.
func parseEntry(h nats.Header, seq uint64) (entry, error) {
	e := entry{kind: get(h, hdrKind), seq: seq, epoch: get(h, hdrEpoch)}
	var err error
	if e.offset, err = uintHeader(h, hdrOffset); err != nil {
		return e, err
	}
	if e.floor, err = uintHeader(h, hdrFloor); err != nil {
		return e, err
	}
	if e.prev, err = uintHeader(h, hdrPrev); err != nil {
		return e, err
	}
	exp, err := uintHeader(h, hdrExpires)
	e.expires = int64(exp)
	return e, err
}

// expired reports whether a publication is past its HistoryTTL at now (Unix ms).
func (e *entry) expired(now int64) bool {
	return e.expires != 0 && e.expires <= now
}

// meta is what a publication carries besides its data, JSON-encoded in
// front of the data when present. Info holds raw client JSON that may span
// lines, so it cannot go in a header.
type meta struct {
	Info *protocol.ClientInfo `json:"info,omitempty"`
	Tags map[string]string    `json:"tags,omitempty"`
}

// encodePublication sets h's time and meta headers for pub and returns the
// message body: the meta JSON, if any, then the data.
func encodePublication(h nats.Header, pub *protocol.Publication) ([]byte, error) {
	h[hdrTime] = []string{strconv.FormatInt(pub.Time, 10)}
	if pub.Info == nil && len(pub.Tags) == 0 {
		return pub.Data, nil
	}
	m, err := json.Marshal(meta{Info: pub.Info, Tags: pub.Tags})
	if err != nil {
		return nil, fmt.Errorf("encode publication info and tags: %w", err)
	}
	h[hdrMeta] = []string{strconv.Itoa(len(m))}
	return append(m, pub.Data...), nil
}

// decodePublication rebuilds a publication of channel from a message made by
// encodePublication. The publication keeps references into body.
func decodePublication(channel string, offset uint64, h nats.Header, body []byte) (*protocol.Publication, error) {
	t, err := uintHeader(h, hdrTime)
	if err != nil {
		return nil, err
	}
	pub := &protocol.Publication{Channel: channel, Offset: offset, Time: int64(t), Data: body}
	n, err := uintHeader(h, hdrMeta)
	if err != nil || n == 0 {
		return pub, err
	}
	if n > uint64(len(body)) {
		return nil, fmt.Errorf("header %s is %d, beyond the %d-byte body", hdrMeta, n, len(body))
	}
	var m meta
	if err := json.Unmarshal(body[:n], &m); err != nil {
		return nil, fmt.Errorf("decode publication info and tags: %w", err)
	}
	pub.Info, pub.Tags, pub.Data = m.Info, m.Tags, body[n:]
	return pub, nil
}

// get returns h's first value for key. Keys are matched exactly: the
// engine writes them itself, and nats.Header does not canonicalize.
func get(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// uintHeader parses h's key as a decimal number, 0 when absent.
func uintHeader(h nats.Header, key string) (uint64, error) {
	v := get(h, key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad header %s %q: %w", key, v, err)
	}
	return n, nil
}

func setUint(h nats.Header, key string, v uint64) {
	h[key] = []string{strconv.FormatUint(v, 10)}
}
