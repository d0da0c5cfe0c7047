package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

// FuzzUserLimitedChannel checks that a user-limited channel name admits
// exactly the users it lists: never an anonymous client, never a user id
// that only matches part of an entry or spans several.
func FuzzUserLimitedChannel(f *testing.F) {
	for _, seed := range [][2]string{
		{"dm:alice,bob", "alice"}, {"dm:alice,bob", "alice,bob"}, {"notifications#alice", "alice"},
		{"a:b#c,d#e", "e"}, {"a:b#c,d#e", "c"}, {"dm:", ""}, {"x#", ""}, {"dm:alice", "ali"},
	} {
		f.Add(seed[0], seed[1])
	}
	n := &Node{}
	f.Fuzz(func(t *testing.T, channel, user string) {
		if !protocol.ValidChannel(channel) {
			return
		}
		ns := NamespaceOptions{Name: protocol.Namespace(channel), UserLimited: true}
		err := n.authorize(Credentials{UserID: user}, ns, channel, actSubscribe, authorization{})
		if err != nil {
			return
		}
		list := channel[strings.IndexByte(channel, ':')+1:]
		if i := strings.LastIndex(channel, "#"); i >= 0 {
			list = channel[i+1:]
		}
		if user == "" || strings.Contains(user, ",") || !slices.Contains(strings.Split(list, ","), user) {
			t.Fatalf("user %q admitted to %q", user, channel)
		}
	})
}
