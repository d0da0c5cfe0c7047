package server

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzClientAddr feeds forwarded-for headers and tokens from hostile
// clients through the gate's parsers: the address found is always the peer
// or one written in the header, and nothing panics.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:1", "203.0.113.9", "Bearer abc", "token=x")
	f.Add("127.0.0.1:1", "1.2.3.4, ::1, garbage,,", "Bearer ", "token=%zz")
	f.Add("[::1]:9", "::ffff:10.0.0.1", "apikey k", "")
	trusted, _ := parsePrefixes([]string{"127.0.0.0/8", "::1", "10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, remote, xff, authorization, query string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}, URL: &url.URL{RawQuery: query}}
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("Authorization", authorization)
		got := clientAddr(r, trusted)
		if got.IsValid() {
			peer, err := netip.ParseAddrPort(remote)
			if err != nil {
				t.Fatalf("address %v from an unparsable peer %q", got, remote)
			}
			if got != peer.Addr().Unmap() && !forwardedHop(xff, got) {
				t.Fatalf("address %v is neither the peer %q nor in %q", got, remote, xff)
			}
		}
		_ = requestToken(r, "herald_token")
	})
}

// forwardedHop reports whether one of the header's comma-separated hops is
// addr, however the hop spells it ("::A" and "::a" are one address).
func forwardedHop(xff string, addr netip.Addr) bool {
	for hop := range strings.SplitSeq(xff, ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}
