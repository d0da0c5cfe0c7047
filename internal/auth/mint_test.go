package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rawClaims decodes a token's header and claims without verifying it.
func rawClaims(t *testing.T, token string) (header map[string]any, claims jwt.MapClaims) {
	t.Helper()
	claims = jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Header, claims
}

func TestMint(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	v := newTestVerifier(t, Config{HMACSecret: testSecret, Audience: "herald", Issuer: "dev"})

	tok, err := Mint(MintOptions{
		Secret: []byte(testSecret), UserID: "alice", TTL: time.Hour, Channels: []string{"news", "user:alice"},
		Info: json.RawMessage(`{ "name" : "Alice" }`), Audience: "herald", Issuer: "dev", Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	header, claims := rawClaims(t, tok)
	if header["alg"] != "HS256" || claims["iat"] != float64(now.Unix()) || claims["exp"] != float64(now.Add(time.Hour).Unix()) ||
		claims["sub"] != "alice" || claims["iss"] != "dev" || claims["channel"] != nil {
		t.Errorf("header %v, claims %v", header, claims)
	}
	// iat lies in the future for the real clock.
	if _, err := v.VerifyConnection(t.Context(), tok); err == nil || !strings.Contains(err.Error(), "issued in the future") {
		t.Errorf("token from 2030: %v", err)
	}

	tok, err = Mint(MintOptions{Secret: []byte(testSecret), UserID: "alice", TTL: time.Hour, Channels: []string{"news"},
		Info: json.RawMessage(`{ "name" : "Alice" }`), Audience: "herald", Issuer: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := v.VerifyConnection(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if cc.UserID != "alice" || string(cc.Info) != `{"name":"Alice"}` || strings.Join(cc.Channels, ",") != "news" ||
		time.Until(cc.ExpiresAt) < 59*time.Minute || time.Until(cc.ExpiresAt) > time.Hour {
		t.Errorf("%+v", cc)
	}

	for _, alg := range []string{"HS384", "HS512"} {
		tok, err := Mint(MintOptions{Secret: []byte(testSecret), Algorithm: alg, Channel: "private:x", Audience: "herald", Issuer: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		header, claims := rawClaims(t, tok)
		if header["alg"] != alg || claims["exp"] != nil || claims["sub"] != nil {
			t.Errorf("%s: header %v, claims %v", alg, header, claims)
		}
		sc, err := v.VerifySubscription(t.Context(), tok)
		if err != nil || sc.Channel != "private:x" || !sc.ExpiresAt.IsZero() {
			t.Errorf("%s: %+v, %v", alg, sc, err)
		}
	}
}

func TestMintRefuses(t *testing.T) {
	secret := []byte(testSecret)
	for _, c := range []struct {
		o   MintOptions
		err string
	}{
		{MintOptions{}, "the secret is 0 bytes"},
		{MintOptions{Secret: secret[1:]}, "the secret is 31 bytes, at least 32"},
		{MintOptions{Secret: secret, Algorithm: "RS256"}, `algorithm "RS256"`},
		{MintOptions{Secret: secret, Algorithm: "none"}, `algorithm "none"`},
		{MintOptions{Secret: secret, TTL: -time.Second}, "negative TTL"},
		{MintOptions{Secret: secret, Channel: "a b"}, `channel "a b" is not a valid channel name`},
		{MintOptions{Secret: secret, Channels: []string{"ok", "bad name"}}, `channels: channels[1] "bad name"`},
		{MintOptions{Secret: secret, Channels: make([]string, maxChannels+1)}, "channels: 129 channels"},
		{MintOptions{Secret: secret, Channel: "a", Channels: []string{"b"}}, "not both"},
		{MintOptions{Secret: secret, Info: json.RawMessage(`{nope`)}, "info: not JSON"},
		{MintOptions{Secret: secret, Info: json.RawMessage(`"` + strings.Repeat("x", maxInfoBytes) + `"`)}, "info: 4098 bytes"},
	} {
		if tok, err := Mint(c.o); err == nil || tok != "" || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %q, %v; want %q", c.o, tok, err, c.err)
		}
	}
}
