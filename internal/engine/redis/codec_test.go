package redis

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestPublicationRoundTrip(t *testing.T) {
	info := &protocol.ClientInfo{Client: "c1", User: "u1", Info: json.RawMessage(`{"name":"ann"}`)}
	cases := []struct {
		name string
		data []byte
		info *protocol.ClientInfo
		tags map[string]string
	}{
		{"data only", []byte(`{"n":1}`), nil, nil},
		{"binary data", []byte{0, 1, 2, 0xff, ':'}, nil, nil},
		{"info and tags", []byte(`{}`), info, map[string]string{"kind": "greeting", "": "empty key"}},
		{"empty data", nil, nil, map[string]string{"a": "b"}},
	}
	for _, c := range cases {
		msg := publicationHeader(0, "", 1234) + string(encodePayload(c.data, c.info, c.tags))
		if msg[0] != msgPublication {
			t.Fatalf("%s: message kind %q", c.name, msg[0])
		}
		pub, epoch, err := decodePublication("ch", msg[1:])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if pub.Channel != "ch" || pub.Offset != 0 || epoch != "" || pub.Time != 1234 || string(pub.Data) != string(c.data) || !maps.Equal(pub.Tags, c.tags) {
			t.Fatalf("%s: decoded %+v epoch %q", c.name, pub, epoch)
		}
		if !sameInfo(pub.Info, c.info) {
			t.Fatalf("%s: info %+v, want %+v", c.name, pub.Info, c.info)
		}
	}
	// The publish script writes the header of stored publications.
	pub, epoch, err := decodePublication("ch", "42:abc:99:"+string(encodePayload([]byte("x"), nil, nil)))
	if err != nil || pub.Offset != 42 || epoch != "abc" || pub.Time != 99 || string(pub.Data) != "x" {
		t.Fatalf("stored publication decoded as %+v, %q, %v", pub, epoch, err)
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	full := string(encodePayload([]byte(`{"n":1}`), &protocol.ClientInfo{Client: "c", User: "u"}, map[string]string{"k": "v"}))
	for n := range len(full) {
		if err := decodePayload(&protocol.Publication{}, full[:n]); err == nil {
			t.Fatalf("a payload cut to %d of %d bytes decoded without error", n, len(full))
		}
	}
	for _, msg := range []string{"", "1:e", "x:e:1:p", "1:e:x:p", "1:e:1:"} {
		if _, _, err := decodePublication("ch", msg); err == nil {
			t.Errorf("message %q decoded without error", msg)
		}
	}
	info := string(encodeInfo(protocol.ClientInfo{Client: "c", User: "u", Info: json.RawMessage(`{}`)}))
	if got, err := decodeInfo(info); err != nil || got.Client != "c" || got.User != "u" || string(got.Info) != `{}` {
		t.Fatalf("decodeInfo: %+v, %v", got, err)
	}
	if _, err := decodeInfo(info[:len(info)-1]); err == nil {
		t.Fatal("a truncated client info decoded without error")
	}
}

func sameInfo(a, b *protocol.ClientInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Client == b.Client && a.User == b.User && string(a.Info) == string(b.Info)
}
