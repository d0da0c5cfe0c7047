package redis

import "testing"

func TestKeySlot(t *testing.T) {
	// Expected slots are what Redis 7's CLUSTER KEYSLOT answers.
	cases := map[string]uint16{
		"foo":                      12182,
		"somekey":                  11058,
		"foo{hash_tag}":            2515,
		"herald:{chat:lobby}:meta": 9590,
		"a{}b":                     13694, // an empty tag hashes the whole key
		"{}x":                      10595,
		"x{y":                      2740, // an unclosed tag too
		"123456789":                12739,
		"":                         0,
	}
	for key, want := range cases {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestKeysShareTheChannelSlot(t *testing.T) {
	e, err := New(Config{URL: "redis://localhost:6379", Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(t.Context())
	const channel = "chat:lobby"
	k := e.keys(channel)
	names := append([]string{k.meta(), k.history(), k.idempotency("key{with}braces"), k.pubsub()}, k.presence()...)
	for _, name := range names {
		if got, want := keySlot(name), keySlot(channel); got != want {
			t.Errorf("%s is in slot %d, want the channel's slot %d", name, got, want)
		}
	}
	if got := e.channelOf(k.pubsub()); got != channel {
		t.Errorf("channelOf(%q) = %q, want %q", k.pubsub(), got, channel)
	}
	for _, other := range []string{"p:control", "q:{chat:lobby}:pubsub", "p:{chat:lobby}:meta"} {
		if got := e.channelOf(other); got != "" {
			t.Errorf("channelOf(%q) = %q, want none", other, got)
		}
	}
}
