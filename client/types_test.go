package client_test

import (
	"testing"

	"github.com/heraldrt/herald/client"
)

func TestEnumStrings(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		client.WebSocket:                "websocket",
		client.ShortPoll:                "shortpoll",
		client.Transport(7):             "Transport(7)",
		client.StateConnecting:          "connecting",
		client.StateClosed:              "closed",
		client.State(9):                 "State(9)",
		client.SubscriptionSubscribed:   "subscribed",
		client.SubscriptionUnsubscribed: "unsubscribed",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
	p := client.Publication{Channel: "a", Offset: 3, Epoch: "e"}
	if p.Position() != (client.StreamPosition{Epoch: "e", Offset: 3}) {
		t.Errorf("Position %v", p.Position())
	}
}
