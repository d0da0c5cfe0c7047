package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// gate is what every client-facing request passes before its transport sees
// it: the origin check and CORS, the per-address connection rate, and
// authentication of the token the request brings.
type gate struct {
	node    *node.Node
	origin  func(*http.Request) bool
	cookie  string
	trusted []netip.Prefix
	// connections holds nil for no limit; reloads swap it.
	connections atomic.Pointer[addrLimiter]
	// meta records what the connect proxy learns of a request; nil: no
	// connect proxy, whose clients need no token.
	meta func(*http.Request) node.RequestMeta
}

// setConnectionRate replaces the per-address connection limit; a zero rate
// lifts it. Counts start afresh under a new limit.
func (g *gate) setConnectionRate(rate float64, burst int) {
	if rate <= 0 {
		g.connections.Store(nil)
		return
	}
	g.connections.Store(newAddrLimiter(rate, burst))
}

// route says what a path needs from the gate.
type route struct {
	// connection routes open a long-lived connection (WebSocket, SSE
	// stream) and count against the per-address connection rate.
	connection bool
	// tokenOptional routes may authenticate later: a WebSocket client can
	// send its token in the connect command instead of the handshake.
	tokenOptional bool
}

// wrap puts next behind the gate.
func (g *gate) wrap(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.corsAndOrigin(w, r) {
			return
		}
		if lim := g.connections.Load(); rt.connection && lim != nil && !lim.allow(clientAddr(r, g.trusted), time.Now()) {
			w.Header().Set("Retry-After", "1")
			protocol.WriteHTTPError(w, protocol.ErrTooManyRequests.With("too many new connections from this address"))
			return
		}
		token := requestToken(r, g.cookie)
		if token == "" && (rt.tokenOptional || g.meta != nil) {
			// Only a client without a token may meet the connect proxy.
			if g.meta != nil {
				r = r.WithContext(node.WithRequestMeta(r.Context(), g.meta(r)))
			}
			next.ServeHTTP(w, r)
			return
		}
		cred, err := g.node.Authenticate(r.Context(), token)
		if err != nil {
			protocol.WriteHTTPError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(node.WithCredentials(r.Context(), cred)))
	})
}

// corsAndOrigin refuses requests from pages of origins that are not allowed
// and answers CORS preflights, reporting whether the request goes on.
//
// Browsers attach cookies to cross-site requests, and to WebSocket
// handshakes without any preflight, so a hostile page could otherwise act
// as its visitor (cross-site WebSocket hijacking, CSRF). Requests without an
// Origin header come from clients that are not browsers, or from same-origin
// navigations, and pass.
func (g *gate) corsAndOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if !g.origin(r) {
		protocol.WriteHTTPError(w, protocol.ErrPermissionDenied.With("origin %.100q is not allowed", origin))
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return true
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return false
}

// requestToken finds the connection token a request brings, in the order a
// client would choose them: an Authorization: Bearer header (programs), a
// token query parameter (EventSource and browser WebSockets, which cannot
// set headers), or the configured cookie (pages whose backend set one).
func requestToken(r *http.Request, cookie string) string {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil {
			return c.Value
		}
	}
	return ""
}
