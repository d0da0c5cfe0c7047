package test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/auth"
)

// tokenCase is a connection token the server must refuse, with the error
// code and WebSocket close code it must refuse it with.
type tokenCase struct {
	name  string
	token string
	code  uint32
	close websocket.StatusCode
	// inQuery sends the token as the token query parameter, and on the
	// WebSocket in the handshake only, rather than in the connect command.
	inQuery bool
	// message is a part of the error message, where it says which fault
	// was found.
	message string
}

func badConnectionTokens(t *testing.T) []tokenCase {
	now := time.Now()
	notYet := goodClaims("nbf")
	notYet["nbf"] = now.Add(time.Hour).Unix()
	notYet["exp"] = now.Add(2 * time.Hour).Unix()
	noAudience := goodClaims("no-aud")
	delete(noAudience, "aud")
	random := make([]byte, 96)
	_, _ = rand.Read(random)
	return []tokenCase{
		{name: "alg none", token: algNone(goodClaims("none")), code: 101, close: 4501},
		{name: "expired", token: mint(t, auth.MintOptions{UserID: "expired", TTL: time.Hour, Now: func() time.Time { return now.Add(-2 * time.Hour) }}), code: 109, close: 4505},
		{name: "not yet valid", token: handSigned(hostileSecret, notYet), code: 101, close: 4501, message: "not valid yet"},
		{name: "wrong key", token: mint(t, auth.MintOptions{UserID: "wrong-key", TTL: time.Hour, Secret: []byte("another-secret-of-at-least-32-bytes!!")}), code: 101, close: 4501},
		{name: "wrong audience", token: mint(t, auth.MintOptions{UserID: "wrong-aud", TTL: time.Hour, Audience: "herald-prod"}), code: 101, close: 4501, message: "audience"},
		{name: "wrong issuer", token: mint(t, auth.MintOptions{UserID: "wrong-iss", TTL: time.Hour, Issuer: "someone-else"}), code: 101, close: 4501, message: "issuer"},
		{name: "missing audience", token: handSigned(hostileSecret, noAudience), code: 101, close: 4501, message: "audience"},
		{name: "subscription token", token: subToken(t, "sub-as-conn", "room:x"), code: 101, close: 4501, message: "subscription token"},
		{name: "no token", token: "", code: 101, close: 4501, message: "token required"},
		{name: "a.b.c", token: "a.b.c", code: 101, close: 4501},
		{name: "random base64", token: b64.EncodeToString(random), code: 101, close: 4501},
		{name: "9000 bytes in query", token: strings.Repeat("A", 9000), code: 101, close: 4501, inQuery: true},
	}
}

// TestHostileTokens presents malformed, forged, expired and misdirected
// connection tokens on the WebSocket connect command, an SSE stream and a
// long poll, and checks each exact rejection and that the server stays
// healthy.
func TestHostileTokens(t *testing.T) {
	bin := hostileBinary(t)
	t.Parallel()
	s := startHostile(t, bin)

	// The hand-built token path works, so the rejections below are about
	// the one claim each case changes.
	t.Run("control", func(t *testing.T) {
		for name, tok := range map[string]string{"minted": userToken(t, "control-m"), "hand-built": handSigned(hostileSecret, goodClaims("control-h"))} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c := s.dialWS(t, ctx, "", nil)
			sendText(t, ctx, c, command(1, "connect", map[string]string{"token": tok}))
			r, _ := awaitReply(t, c, 1, 10*time.Second)
			expectResult(t, name+" token on websocket", r)
			cancel()
			if a := s.request(t, http.MethodGet, s.URL("/sse?channel=room:x"), bearer(tok), nil); a.status != http.StatusOK {
				t.Errorf("%s token on SSE: HTTP %d code %d", name, a.status, a.err.Code)
			}
			if a := s.request(t, http.MethodGet, s.URL("/poll?channel=room:x&timeout=0"), bearer(tok), nil); a.status != http.StatusOK {
				t.Errorf("%s token on poll: HTTP %d code %d", name, a.status, a.err.Code)
			}
		}
	})

	for _, tc := range badConnectionTokens(t) {
		t.Run(tc.name, func(t *testing.T) {
			checkMessage := func(transport, msg string) {
				t.Helper()
				if tc.message != "" && !strings.Contains(msg, tc.message) {
					t.Errorf("%s: error message %q does not mention %q", transport, msg, tc.message)
				}
			}
			// How an HTTP request carries the token: a query parameter, or
			// an Authorization header (none for no token).
			query, header := "", bearer(tc.token)
			if tc.inQuery {
				query, header = "token="+url.QueryEscape(tc.token), nil
			}

			if !tc.inQuery {
				t.Run("websocket connect", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c := s.dialWS(t, ctx, "", nil)
					params := map[string]string{}
					if tc.token != "" {
						params["token"] = tc.token
					}
					sendText(t, ctx, c, command(1, "connect", params))
					o := readUntilClose(t, c, 10*time.Second)
					if r, ok := o.reply(1); !ok {
						t.Errorf("connect got no reply before the close (%d %q)", o.code, o.reason)
					} else {
						expectErrorReply(t, "connect", r, tc.code)
						checkMessage("connect reply", r.Error.Message)
					}
					expectClose(t, "connect", o, tc.close)
					s.assertHealthy(t)
				})
			}
			// A handshake without a token is upgraded: the connect command
			// may bring one.
			if tc.token != "" {
				t.Run("websocket handshake", func(t *testing.T) {
					a := s.dialRefused(t, "?"+query, header)
					expectHTTPError(t, "handshake", a, http.StatusUnauthorized, tc.code)
					checkMessage("handshake", a.err.Message)
					s.assertHealthy(t)
				})
			}
			t.Run("sse", func(t *testing.T) {
				a := s.request(t, http.MethodGet, s.URL("/sse?channel=room:x&"+query), header, nil)
				expectHTTPError(t, "SSE", a, http.StatusUnauthorized, tc.code)
				checkMessage("SSE", a.err.Message)
				s.assertHealthy(t)
			})
			t.Run("long poll", func(t *testing.T) {
				a := s.request(t, http.MethodGet, s.URL("/poll?channel=room:x&timeout=1&"+query), header, nil)
				expectHTTPError(t, "poll", a, http.StatusUnauthorized, tc.code)
				checkMessage("poll", a.err.Message)
				s.assertHealthy(t)
			})
		})
	}
}

// TestHostileSubscriptionTokens tries to enter a private channel with
// subscription tokens for another channel or another user, a connection
// token, and no token, over a WebSocket subscribe, an SSE stream's
// sub_token and a poll's sub_token.
func TestHostileSubscriptionTokens(t *testing.T) {
	bin := hostileBinary(t)
	t.Parallel()
	s := startHostile(t, bin)
	const user, channel = "alice", "secret:vault"
	cases := []struct {
		name  string
		token string
		code  uint32
	}{
		{"token for another channel", subToken(t, user, "secret:other"), 103},
		{"token for another user", subToken(t, "bob", channel), 103},
		{"connection token", userToken(t, user), 103},
		{"no token", "", 103},
	}
	status := map[uint32]int{101: http.StatusUnauthorized, 103: http.StatusForbidden}

	t.Run("websocket", func(t *testing.T) {
		c := s.connectWS(t, user)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		id := uint32(1)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id++
				params := map[string]string{"channel": channel}
				if tc.token != "" {
					params["token"] = tc.token
				}
				sendText(t, ctx, c, command(id, "subscribe", params))
				r, _ := awaitReply(t, c, id, 10*time.Second)
				expectErrorReply(t, "subscribe", r, tc.code)
				// A refused subscribe leaves the connection working.
				id++
				sendText(t, ctx, c, command(id, "ping", nil))
				r, _ = awaitReply(t, c, id, 10*time.Second)
				expectResult(t, "ping after the refusal", r)
				s.assertHealthy(t)
			})
		}
		id++
		sendText(t, ctx, c, command(id, "subscribe", map[string]string{"channel": channel, "token": subToken(t, user, channel)}))
		r, _ := awaitReply(t, c, id, 10*time.Second)
		expectResult(t, "subscribe with a valid subscription token", r)
	})

	for _, transport := range []struct{ name, path string }{
		{"sse", "/sse?channel=" + channel},
		{"poll", "/poll?timeout=0&channel=" + channel},
	} {
		t.Run(transport.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					target := transport.path
					if tc.token != "" {
						target += "&sub_token=" + url.QueryEscape(tc.token)
					}
					a := s.request(t, http.MethodGet, s.URL(target), bearer(userToken(t, user)), nil)
					expectHTTPError(t, transport.name, a, status[tc.code], tc.code)
					s.assertHealthy(t)
				})
			}
			target := transport.path + "&sub_token=" + url.QueryEscape(subToken(t, user, channel))
			if a := s.request(t, http.MethodGet, s.URL(target), bearer(userToken(t, user)), nil); a.status != http.StatusOK {
				t.Errorf("valid subscription token: HTTP %d code %d (%q)", a.status, a.err.Code, a.err.Message)
			}
		})
	}
}
