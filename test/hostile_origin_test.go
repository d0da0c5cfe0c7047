package test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileCrossOrigin sends WebSocket upgrades, SSE streams, polls,
// client publishes and CORS preflights from pages of origins that are not
// allowed, each bringing a valid token: all must be refused with 403 and
// code 103, without CORS headers. The same from the allowed origin works
// and carries Access-Control-Allow-Origin.
func TestHostileCrossOrigin(t *testing.T) {
	bin := hostileBinary(t)
	t.Parallel()
	s := startHostile(t, bin)
	token := userToken(t, "origin-user")
	headers := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Authorization": {"Bearer " + token}}
	}
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization"}}
	}
	publishBody := []byte(`{"channel":"room:origin","data":{"from":"page"}}`)

	for _, origin := range []string{
		"https://evil.example",
		"null",
		"http://app.example",               // another scheme
		"https://app.example:8443",         // another port
		"https://app.example.evil.example", // the allowed name as a prefix
	} {
		t.Run(origin, func(t *testing.T) {
			refused := func(what string, a httpAnswer, status int) {
				t.Helper()
				expectHTTPError(t, what, a, status, 103)
				if v := a.header.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("%s: refused with Access-Control-Allow-Origin %q", what, v)
				}
			}
			refused("WebSocket upgrade", s.dialRefused(t, "", headers(origin)), http.StatusForbidden)
			refused("SSE", s.request(t, http.MethodGet, s.URL("/sse?channel=room:origin"), headers(origin), nil), http.StatusForbidden)
			refused("poll", s.request(t, http.MethodGet, s.URL("/poll?channel=room:origin&timeout=1"), headers(origin), nil), http.StatusForbidden)
			h := headers(origin)
			h.Set("Content-Type", "application/json")
			refused("client publish", s.request(t, http.MethodPost, s.URL("/publish"), h, publishBody), http.StatusForbidden)
			for _, path := range []string{"/sse?channel=room:origin", "/poll?channel=room:origin", "/publish"} {
				refused("preflight of "+path, s.request(t, http.MethodOptions, s.URL(path), preflight(origin), nil), http.StatusForbidden)
			}
			s.assertHealthy(t)
		})
	}

	t.Run("allowed origin", func(t *testing.T) {
		allowed := func(what string, a httpAnswer, status int) {
			t.Helper()
			if a.status != status {
				t.Errorf("%s: HTTP %d code %d (%q), want %d", what, a.status, a.err.Code, a.err.Message, status)
			}
			if v := a.header.Get("Access-Control-Allow-Origin"); v != hostileOrigin {
				t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, v, hostileOrigin)
			}
			if v := a.header.Get("Access-Control-Allow-Credentials"); v != "true" {
				t.Errorf("%s: Access-Control-Allow-Credentials %q, want true", what, v)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := s.dialWS(t, ctx, "", headers(hostileOrigin))
		sendText(t, ctx, c, command(1, "connect", map[string]string{}))
		r, _ := awaitReply(t, c, 1, 10*time.Second)
		expectResult(t, "connect with the handshake's token from the allowed origin", r)
		sendText(t, ctx, c, command(2, "subscribe", map[string]string{"channel": "room:origin"}))
		r, _ = awaitReply(t, c, 2, 10*time.Second)
		expectResult(t, "subscribe from the allowed origin", r)

		allowed("SSE", s.request(t, http.MethodGet, s.URL("/sse?channel=room:origin"), headers(hostileOrigin), nil), http.StatusOK)
		allowed("poll", s.request(t, http.MethodGet, s.URL("/poll?channel=room:origin&timeout=0"), headers(hostileOrigin), nil), http.StatusOK)
		// A poll that has to wait is answered by the event loop, not by
		// net/http, and must carry the same CORS answer.
		allowed("waiting poll", s.request(t, http.MethodGet, s.URL("/poll?channel=room:origin-quiet&timeout=1"), headers(hostileOrigin), nil), http.StatusOK)
		h := headers(hostileOrigin)
		h.Set("Content-Type", "application/json")
		allowed("client publish", s.request(t, http.MethodPost, s.URL("/publish"), h, publishBody), http.StatusOK)
		for _, path := range []string{"/sse?channel=room:origin", "/poll?channel=room:origin", "/publish"} {
			a := s.request(t, http.MethodOptions, s.URL(path), preflight(hostileOrigin), nil)
			allowed("preflight of "+path, a, http.StatusNoContent)
			if m := a.header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "GET") {
				t.Errorf("preflight of %s: Access-Control-Allow-Methods %q lacks GET", path, m)
			}
			if hs := strings.ToLower(a.header.Get("Access-Control-Allow-Headers")); !strings.Contains(hs, "authorization") {
				t.Errorf("preflight of %s: Access-Control-Allow-Headers %q lacks Authorization", path, hs)
			}
		}
		// The page's publication reached its WebSocket subscriber.
		for {
			frames, err := readFrames(ctx, c)
			if err != nil {
				t.Fatalf("no publication from the allowed page: %v", err)
			}
			if len(frames) > 0 && frames[0].Type == "publication" && frames[0].Channel == "room:origin" {
				break
			}
		}
		s.assertHealthy(t)
	})
}
