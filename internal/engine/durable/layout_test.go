package durable

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestPublicationRoundTrip(t *testing.T) {
	pubs := []*protocol.Publication{
		{Channel: "chat:a", Offset: 7, Data: json.RawMessage(`{"x":1}`), Time: 1700000000123},
		{
			Channel: "chat:a", Offset: 1 << 40, Data: json.RawMessage(`"s"`), Time: 5,
			Info: &protocol.ClientInfo{Client: "c", User: "u", Info: json.RawMessage(`{"n":"ann"}`)},
			Tags: map[string]string{"a": "1", "b": ""},
		},
		{Channel: "x", Offset: 1, Data: json.RawMessage(`1`), Info: &protocol.ClientInfo{Client: "c"}},
	}
	for _, want := range pubs {
		v := encodePublication(want, 99)
		got, expires, err := decodePublication(want.Channel, want.Offset, v)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if exp, err := decodeExpiry(v); err != nil || exp != 99 || expires != 99 {
			t.Fatalf("expiry %d/%d (%v), want 99", exp, expires, err)
		}
		if got.Channel != want.Channel || got.Offset != want.Offset || got.Time != want.Time ||
			string(got.Data) != string(want.Data) || !maps.Equal(got.Tags, want.Tags) ||
			(got.Info == nil) != (want.Info == nil) {
			t.Fatalf("round trip: got %+v, want %+v", got, want)
		}
		if want.Info != nil && (got.Info.Client != want.Info.Client || got.Info.User != want.Info.User ||
			string(got.Info.Info) != string(want.Info.Info)) {
			t.Fatalf("info round trip: got %+v, want %+v", got.Info, want.Info)
		}
	}
}

func TestMetaAndIdempotentRoundTrip(t *testing.T) {
	m := meta{epoch: "abc123", top: 1 << 50, low: 17}
	if got, err := decodeMeta(encodeMeta(m)); err != nil || got != m {
		t.Fatalf("meta round trip: %+v, %v; want %+v", got, err, m)
	}
	r := idempotent{offset: 42, expires: 1700000000000}
	if got, err := decodeIdempotent(encodeIdempotent(r)); err != nil || got != r {
		t.Fatalf("idempotent round trip: %+v, %v; want %+v", got, err, r)
	}
}

// TestTruncatedValuesAreErrors checks that every truncation of a valid value
// decodes to an error rather than a panic or a wrong value.
func TestTruncatedValuesAreErrors(t *testing.T) {
	pub := &protocol.Publication{
		Channel: "c", Offset: 1, Data: json.RawMessage(`{"x":1}`), Time: 1,
		Info: &protocol.ClientInfo{Client: "c", User: "u"}, Tags: map[string]string{"k": "v"},
	}
	full := encodePublication(pub, 0)
	for n := range len(full) {
		if _, _, err := decodePublication("c", 1, full[:n]); err == nil {
			t.Fatalf("publication truncated to %d of %d bytes decoded without error", n, len(full))
		}
	}
	m := encodeMeta(meta{epoch: "e", top: 300, low: 2})
	for n := range len(m) {
		if _, err := decodeMeta(m[:n]); err == nil {
			t.Fatalf("meta truncated to %d of %d bytes decoded without error", n, len(m))
		}
	}
}

func TestChannelKeyRangesAreDisjoint(t *testing.T) {
	// "a" and "a:b" share a prefix; the 0x00 separator keeps every key of
	// "a" below every key of "a:b".
	if string(pubKey("a", ^uint64(0))) >= string(pubKey("a:b", 0)) {
		t.Fatal(`keys of channel "a" overlap channel "a:b"`)
	}
	if string(pubKey("a", 255)) >= string(pubKey("a", 256)) {
		t.Fatal("offsets do not sort numerically")
	}
}
