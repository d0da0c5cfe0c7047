package protocol

import "strings"

// MaxChannelLength bounds channel names so keys stay small in every engine.
const MaxChannelLength = 255

// ValidChannel reports whether name is an acceptable channel name: 1 to
// MaxChannelLength bytes of ASCII letters, digits and the punctuation
// "_-:.@,#=/~!$". Whitespace, quotes and control bytes are excluded so names
// can appear unescaped in URLs, logs and storage keys.
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelLength {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return false
		}
	}
	return true
}

// Namespace returns the part of a channel name before its first ':', or ""
// for a channel in the default namespace.
func Namespace(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return ""
}

var channelByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-:.@,#=/~!$" {
		t[c] = true
	}
	return t
}()
