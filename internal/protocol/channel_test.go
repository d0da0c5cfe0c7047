package protocol

import (
	"strings"
	"testing"
)

func TestValidChannel(t *testing.T) {
	good := []string{"a", "chat:lobby", "dm:alice,bob", "notifications#alice", "a.b-c_d/e=f~g!h$i@j", strings.Repeat("x", MaxChannelLength)}
	for _, c := range good {
		if !ValidChannel(c) {
			t.Errorf("ValidChannel(%q) = false", c)
		}
	}
	bad := []string{"", " ", "a b", "a\nb", `a"b`, "a\x00", "é", "a?b", "a&b", "a%20", strings.Repeat("x", MaxChannelLength+1)}
	for _, c := range bad {
		if ValidChannel(c) {
			t.Errorf("ValidChannel(%q) = true", c)
		}
	}
}

func TestNamespace(t *testing.T) {
	for in, want := range map[string]string{"chat:lobby": "chat", "lobby": "", "a:b:c": "a", ":x": ""} {
		if got := Namespace(in); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzValidChannel(f *testing.F) {
	f.Add("chat:lobby")
	f.Add("a b")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidChannel(s) {
			return
		}
		// Accepted names must be safe to embed unescaped in JSON strings, URL
		// query values and SSE lines.
		if strings.ContainsAny(s, "\"\\\n\r \t&?%+'<>") {
			t.Fatalf("accepted unsafe name %q", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] > 0x7e {
				t.Fatalf("accepted non-printable byte in %q", s)
			}
		}
		if len(s) > MaxChannelLength {
			t.Fatalf("accepted %d-byte name", len(s))
		}
	})
}
