package webhook

import (
	"testing"

	"github.com/heraldrt/herald/internal/node"
)

func TestFilterMatch(t *testing.T) {
	e := Endpoint{URL: "https://h/x", Secret: testSecret, Events: []string{"subscribe", "connect"}, Channels: []string{"chat:*", "news"}}
	f, err := e.filter()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    node.EventType
		ch   string
		want bool
	}{
		{node.EventSubscribe, "chat:a", true},
		{node.EventSubscribe, "news", true},
		{node.EventSubscribe, "newsy", false},
		{node.EventPublish, "chat:a", false},
		{node.EventConnect, "", true},
	} {
		if got := f.match(c.t, c.ch); got != c.want {
			t.Errorf("%v on %q: %v", c.t, c.ch, got)
		}
	}
}
