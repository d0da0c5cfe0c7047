package server

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// originChecker decides which pages may open WebSocket connections. Browsers
// attach cookies and other ambient credentials to a cross-site WebSocket
// handshake without asking the server first (no CORS preflight), so a page
// on another origin is refused unless allowed: dev mode and "*" allow any,
// otherwise only this server's own origin and those listed. Requests
// without an Origin header come from non-browser clients and pass.
func originChecker(dev bool, allowed []string) func(*http.Request) bool {
	if dev || slices.Contains(allowed, "*") {
		return func(*http.Request) bool { return true }
	}
	list := make([]string, len(allowed))
	for i, a := range allowed {
		list[i] = strings.ToLower(strings.TrimSuffix(a, "/"))
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			return false
		}
		if strings.EqualFold(u.Host, r.Host) {
			return true
		}
		return slices.Contains(list, strings.ToLower(origin))
	}
}
