package client_test

import (
	"testing"

	"github.com/heraldrt/herald/client"
)

func TestPositions(t *testing.T) {
	p := client.StreamPosition{Epoch: "Ka9x2", Offset: 17}
	if p.String() != "Ka9x2-17" {
		t.Fatalf("String %q", p)
	}
	if got, err := client.ParsePosition("Ka9x2-17"); err != nil || got != p {
		t.Fatalf("ParsePosition: %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "a-b", "a-01", "a-1.b-2", "é-1"} {
		if _, err := client.ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
	// The example of docs/protocol.md: channels in canonical order,
	// whatever order they are named in.
	ps := map[string]client.StreamPosition{"chat:b": {Epoch: "Mf3q0", Offset: 4}, "chat:a": p}
	if s := client.FormatPositions(ps); s != "Ka9x2-17.Mf3q0-4" {
		t.Fatalf("FormatPositions %q", s)
	}
	got, err := client.ParsePositions("Ka9x2-17.Mf3q0-4", "chat:b", "chat:a")
	if err != nil || got["chat:a"] != p || got["chat:b"].Offset != 4 {
		t.Fatalf("ParsePositions: %v, %v", got, err)
	}
	if _, err := client.ParsePositions("Ka9x2-17", "chat:b", "chat:a"); err == nil {
		t.Fatal("one entry for two channels accepted")
	}
	if !(client.StreamPosition{}).IsZero() || p.IsZero() {
		t.Fatal("IsZero")
	}
}
