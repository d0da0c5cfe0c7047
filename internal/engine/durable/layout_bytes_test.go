package durable

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

// TestPublicationValueBytes pins the stored bytes of a publication value:
// stores written by earlier builds must still decode, so any change here
// needs a new formatVersion.
func TestPublicationValueBytes(t *testing.T) {
	cases := []struct {
		pub     *protocol.Publication
		expires int64
		want    string
	}{
		{&protocol.Publication{Data: json.RawMessage(`{"x":1}`), Time: 1700000000123}, 0, "0100f6a1abfef96200077b2278223a317d"},
		{
			&protocol.Publication{
				Data: json.RawMessage(`"s"`), Time: 5,
				Info: &protocol.ClientInfo{Client: "c", User: "u", Info: json.RawMessage(`{"n":"ann"}`)},
				Tags: map[string]string{"a": "1"},
			},
			1700000600123, "01f6c0f4fef9620a0303227322016301750b7b226e223a22616e6e227d0101610131",
		},
		{&protocol.Publication{Data: json.RawMessage(`1`), Time: -1, Tags: map[string]string{"k": ""}}, -300, "01d7040102013101016b00"},
	}
	for i, c := range cases {
		if got := hex.EncodeToString(encodePublication(c.pub, c.expires)); got != c.want {
			t.Errorf("case %d: value %s, want %s", i, got, c.want)
		}
	}
}
