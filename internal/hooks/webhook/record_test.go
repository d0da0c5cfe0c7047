package webhook

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

func TestEntryRoundTrip(t *testing.T) {
	ev := node.Event{Type: node.EventJoin, Time: time.Unix(5, 0), Node: "n", Client: "c", User: "u", Channel: "chat:a", Info: json.RawMessage(`{"x":1}`)}
	v := encodeEntry("box", 42, &ev)
	bit, ch, body, ok := decodeHead(v)
	if !ok || node.EventType(bit) != node.EventJoin || ch != "chat:a" {
		t.Fatalf("head %d %q %v", bit, ch, ok)
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "box-42" || r.Type != "join" || r.User != "u" || string(r.Info) != `{"x":1}` || !r.Time.Equal(ev.Time) {
		t.Errorf("record %+v", r)
	}
	if _, _, _, ok := decodeHead(v[:3]); ok {
		t.Error("a truncated entry decoded")
	}
}

// An event whose info is not valid JSON still encodes, without it.
func TestEntryWithBadInfo(t *testing.T) {
	ev := node.Event{Type: node.EventConnect, Client: "c", Info: json.RawMessage(`{not json`)}
	_, _, body, _ := decodeHead(encodeEntry("box", 1, &ev))
	var r Record
	if err := json.Unmarshal(body, &r); err != nil || r.Client != "c" || r.Info != nil {
		t.Fatalf("record %+v: %v", r, err)
	}
}
