package webhook

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// Record is one event as a receiver gets it, inside a batch
// {"events":[…]}. ID is unique per event and the same on every retry of it,
// across restarts too, so receivers deduplicate on it.
type Record struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Node string    `json:"node,omitempty"`

	Client    string            `json:"client,omitempty"`
	User      string            `json:"user,omitempty"`
	Transport string            `json:"transport,omitempty"`
	Info      json.RawMessage   `json:"info,omitempty"`
	Channel   string            `json:"channel,omitempty"`
	Offset    uint64            `json:"offset,omitempty"`
	Epoch     string            `json:"epoch,omitempty"`
	Data      json.RawMessage   `json:"data,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	Code      uint16            `json:"code,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	// Dropped is set on "overflow" events: how many events the outbox
	// refused since the previous overflow event.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Batch is the body of every webhook request.
type Batch struct {
	Events []Record `json:"events"`
}

// TypeOverflow is the type of the event that reports refused events.
const TypeOverflow = "overflow"

// overflowBit marks an overflow entry in the stored type mask; it passes
// every endpoint's filter.
const overflowBit = 1 << 15

// A stored entry is the event's type bit (2 bytes), its channel (uvarint
// length, bytes), then the record's JSON, so an endpoint's filter reads
// the first two without decoding the third.

func encodeEntry(id string, seq uint64, ev *node.Event) []byte {
	r := Record{
		ID: id + "-" + strconv.FormatUint(seq, 10), Type: ev.Type.String(), Time: ev.Time.UTC(), Node: ev.Node,
		Client: ev.Client, User: ev.User, Transport: ev.Transport, Info: ev.Info, Channel: ev.Channel,
		Offset: ev.Offset, Epoch: ev.Epoch, Data: ev.Data, Tags: ev.Tags, Code: ev.Code, Reason: ev.Reason,
	}
	return entryValue(uint16(ev.Type), ev.Channel, &r)
}

func encodeOverflow(id string, seq uint64, dropped uint64, now time.Time) []byte {
	r := Record{ID: id + "-" + strconv.FormatUint(seq, 10), Type: TypeOverflow, Time: now.UTC(), Dropped: dropped}
	return entryValue(overflowBit, "", &r)
}

func entryValue(bit uint16, channel string, r *Record) []byte {
	b := binary.BigEndian.AppendUint16(nil, bit)
	b = binary.AppendUvarint(b, uint64(len(channel)))
	b = append(b, channel...)
	js, err := json.Marshal(r)
	if err != nil {
		// Only Info or Data can fail, when not valid JSON; the node checks
		// both, but a batch must never carry a broken event.
		r.Info, r.Data = nil, nil
		js, _ = json.Marshal(r)
	}
	return append(b, js...)
}

// decodeHead returns an entry's type bit, channel and record JSON; ok is
// false for a damaged entry.
func decodeHead(v []byte) (bit uint16, channel string, body []byte, ok bool) {
	if len(v) < 3 {
		return 0, "", nil, false
	}
	bit = binary.BigEndian.Uint16(v)
	n, k := binary.Uvarint(v[2:])
	if k <= 0 || uint64(len(v)-2-k) < n {
		return 0, "", nil, false
	}
	start := 2 + k
	return bit, string(v[start : start+int(n)]), v[start+int(n):], true
}
