package nats

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, ch := range []string{"", "a", "chat:lobby", "a.b.c", "ns:x#y,z-w_v@u=t/s~r!q$p", strings.Repeat("z", protocol.MaxChannelLength)} {
		tok := token(ch)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token(%q) = %q is not one subject token", ch, tok)
		}
		got, err := untoken(tok)
		if err != nil || got != ch {
			t.Fatalf("untoken(token(%q)) = %q, %v", ch, got, err)
		}
	}
	n := newNames("p")
	if ch, ok := n.channelOfDelivery(n.delivery("a.b:c")); !ok || ch != "a.b:c" {
		t.Fatalf("channelOfDelivery(delivery(a.b:c)) = %q, %v", ch, ok)
	}
	if _, ok := n.channelOfDelivery(n.history("a")); ok {
		t.Fatal("a history subject was taken for a delivery subject")
	}
}

func TestPublicationRoundTrip(t *testing.T) {
	cases := []*protocol.Publication{
		{Channel: "c", Offset: 3, Data: json.RawMessage(`{"n":1}`), Time: 1700000000000},
		{
			Channel: "c", Offset: 4, Time: 1700000000001,
			Data: json.RawMessage("{\n  \"multi\": \"line\"\n}"),
			Info: &protocol.ClientInfo{Client: "c1", User: "u1", Info: json.RawMessage(`{"name":"ann"}`)},
			Tags: map[string]string{"k": "v"},
		},
	}
	for _, want := range cases {
		h := nats.Header{}
		body, err := encodePublication(h, want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePublication(want.Channel, want.Offset, h, body)
		if err != nil {
			t.Fatal(err)
		}
		if got.Channel != want.Channel || got.Offset != want.Offset || got.Time != want.Time ||
			string(got.Data) != string(want.Data) || !maps.Equal(got.Tags, want.Tags) ||
			(want.Info == nil) != (got.Info == nil) ||
			(want.Info != nil && (got.Info.Client != want.Info.Client || string(got.Info.Info) != string(want.Info.Info))) {
			t.Fatalf("decoded %+v, want %+v", got, want)
		}
	}
	if _, err := decodePublication("c", 1, nats.Header{hdrMeta: {"99"}}, []byte("{}")); err == nil {
		t.Fatal("a meta length beyond the body decoded")
	}
}
