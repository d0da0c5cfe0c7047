package bench

import (
	"bytes"
	"strconv"
)

// A payload is the data of every publication the bench sends, a JSON
// object whose first fields are fixed so a receiver finds them with a byte
// scan instead of a JSON decoder:
//
//	{"s":17,"t":1763856000123456789,"m":1,"p":"xxxx"}
//
// s is the sequence number within the channel (from 1), t the sender's wall
// clock in Unix nanoseconds when the publication was due (the generator and
// the server share a machine, so both clocks are one), m is 1 for a
// publication inside the measured window and 0 during warm-up, and p pads
// the object to the requested size. The server stores data byte for byte, so
// every transport delivers this exact text inside its publication.

// payloadMarker starts a payload as it appears inside a publication push,
// SSE event or poll answer.
var payloadMarker = []byte(`"data":{"s":`)

// appendPayload appends a payload of about size bytes (never less than
// needed for the fixed fields).
func appendPayload(dst []byte, seq uint64, sentNS int64, measured bool, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, sentNS, 10)
	if measured {
		dst = append(dst, `,"m":1`...)
	} else {
		dst = append(dst, `,"m":0`...)
	}
	dst = append(dst, `,"p":"`...)
	for pad := size - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// sample is what a receiver reads from one payload.
type sample struct {
	seq      uint64
	sentNS   int64
	measured bool
}

// nextPayload finds the first payload in b and returns it with the rest of
// b after it; ok is false when b holds no complete one.
func nextPayload(b []byte) (s sample, rest []byte, ok bool) {
	i := bytes.Index(b, payloadMarker)
	if i < 0 {
		return sample{}, nil, false
	}
	b = b[i+len(payloadMarker):]
	seq, b, ok := leadingUint(b)
	if !ok || !bytes.HasPrefix(b, []byte(`,"t":`)) {
		return sample{}, b, false
	}
	t, b, ok := leadingUint(b[len(`,"t":`):])
	if !ok || !bytes.HasPrefix(b, []byte(`,"m":`)) || len(b) < len(`,"m":`)+1 {
		return sample{}, b, false
	}
	return sample{seq: seq, sentNS: int64(t), measured: b[len(`,"m":`)] == '1'}, b[len(`,"m":`)+1:], true
}

// leadingUint parses the decimal digits that start b.
func leadingUint(b []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 19 {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, b[i:], i > 0
}
