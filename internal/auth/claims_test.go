package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

func hs256(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims, nil)
}

// A connection token never subscribes and a subscription token never
// connects.
func TestTokenKinds(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	conn := hs256(t, jwt.MapClaims{"sub": "alice", "channels": []string{"news"}})
	sub := hs256(t, jwt.MapClaims{"sub": "alice", "channel": "private:x"})

	if _, err := v.VerifyConnection(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	_, err := v.VerifySubscription(t.Context(), conn)
	wantError(t, err, protocol.ErrUnauthorized, "not a subscription token")

	if _, err := v.VerifySubscription(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyConnection(t.Context(), sub)
	wantError(t, err, protocol.ErrUnauthorized, "a subscription token cannot be used to connect")

	// Any "channel" member marks a subscription token, even an empty one.
	for _, ch := range []any{nil, "", 1} {
		_, err = v.VerifyConnection(t.Context(), hs256(t, jwt.MapClaims{"sub": "alice", "channel": ch}))
		wantError(t, err, protocol.ErrUnauthorized, "a subscription token cannot be used to connect")
	}
}

func TestConnectionClaims(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	many := make([]string, maxChannels+1)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	for _, c := range []struct {
		claims jwt.MapClaims
		want   ConnectionClaims // when reason is ""
		reason string
	}{
		{jwt.MapClaims{}, ConnectionClaims{}, ""},
		{jwt.MapClaims{"sub": "bob", "exp": 4102444800}, ConnectionClaims{UserID: "bob", ExpiresAt: time.Unix(4102444800, 0)}, ""},
		{jwt.MapClaims{"info": nil}, ConnectionClaims{}, ""},
		{jwt.MapClaims{"info": "hi"}, ConnectionClaims{Info: []byte(`"hi"`)}, ""},
		{jwt.MapClaims{"info": []any{1, map[string]any{"a": true}}}, ConnectionClaims{Info: []byte(`[1,{"a":true}]`)}, ""},
		{jwt.MapClaims{"info": strings.Repeat("x", maxInfoBytes-2)}, ConnectionClaims{Info: []byte(`"` + strings.Repeat("x", maxInfoBytes-2) + `"`)}, ""},
		{jwt.MapClaims{"info": strings.Repeat("x", maxInfoBytes-1)}, ConnectionClaims{}, "info claim: 4097 bytes, at most 4096"},
		{jwt.MapClaims{"channels": many[:maxChannels]}, ConnectionClaims{Channels: many[:maxChannels]}, ""},
		{jwt.MapClaims{"channels": many}, ConnectionClaims{}, "channels claim: 129 channels, at most 128"},
		{jwt.MapClaims{"channels": []string{"ok", "not ok"}}, ConnectionClaims{}, `channels claim: channels[1] "not ok" is not a valid channel name`},
		{jwt.MapClaims{"channels": []string{""}}, ConnectionClaims{}, "is not a valid channel name"},
		{jwt.MapClaims{"channels": []string{strings.Repeat("a", protocol.MaxChannelLength+1)}}, ConnectionClaims{}, "is not a valid channel name"},
		{jwt.MapClaims{"channels": []any{"ok", 1}}, ConnectionClaims{}, "malformed token"},
		{jwt.MapClaims{"channels": "news"}, ConnectionClaims{}, "malformed token"},
		{jwt.MapClaims{"sub": 7}, ConnectionClaims{}, "malformed token"},
	} {
		got, err := v.VerifyConnection(t.Context(), hs256(t, c.claims))
		if c.reason != "" {
			wantError(t, err, protocol.ErrUnauthorized, c.reason)
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.claims, err)
			continue
		}
		if got.UserID != c.want.UserID || !got.ExpiresAt.Equal(c.want.ExpiresAt) || string(got.Info) != string(c.want.Info) ||
			(got.Info == nil) != (c.want.Info == nil) || strings.Join(got.Channels, ",") != strings.Join(c.want.Channels, ",") {
			t.Errorf("%v: got %+v, want %+v", c.claims, got, c.want)
		}
	}
}

func TestSubscriptionClaims(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	got, err := v.VerifySubscription(t.Context(), hs256(t, jwt.MapClaims{"sub": "alice", "channel": "private:x", "exp": 4102444800, "info": map[string]any{"role": "viewer"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != "alice" || got.Channel != "private:x" || got.ExpiresAt.Unix() != 4102444800 || string(got.Info) != `{"role":"viewer"}` {
		t.Errorf("%+v", got)
	}
	if got, err := v.VerifySubscription(t.Context(), hs256(t, jwt.MapClaims{"channel": "x"})); err != nil || got.UserID != "" || !got.ExpiresAt.IsZero() || got.Info != nil {
		t.Errorf("anonymous, no exp: %+v, %v", got, err)
	}
	for _, c := range []struct {
		claims jwt.MapClaims
		reason string
	}{
		{jwt.MapClaims{"channel": ""}, `channel claim: "" is not a valid channel name`},
		{jwt.MapClaims{"channel": "a b"}, "is not a valid channel name"},
		{jwt.MapClaims{"channel": nil}, "is not a valid channel name"},
		{jwt.MapClaims{"channel": []string{"x"}}, "channel claim is not a string"},
		{jwt.MapClaims{"channel": "x", "channels": []string{"y"}}, "cannot carry a channels claim"},
		{jwt.MapClaims{"channel": "x", "info": strings.Repeat("x", maxInfoBytes)}, "info claim: 4098 bytes"},
	} {
		_, err := v.VerifySubscription(t.Context(), hs256(t, c.claims))
		wantError(t, err, protocol.ErrUnauthorized, c.reason)
	}
}
