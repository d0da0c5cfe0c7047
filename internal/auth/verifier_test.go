package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// algCase is one algorithm with a Config accepting it, the key signing for
// it, and another key of the same kind, which must not verify.
type algCase struct {
	method   jwt.SigningMethod
	cfg      Config
	key, bad any
}

func algCases(t *testing.T) []algCase {
	k := testKeys()
	hmac := Config{HMACSecret: testSecret}
	wrongSecret := []byte(strings.Repeat("x", 32))
	rsaCfg := Config{PublicKey: publicPEM(t, k.rsa)}
	return []algCase{
		{jwt.SigningMethodHS256, hmac, []byte(testSecret), wrongSecret},
		{jwt.SigningMethodHS384, hmac, []byte(testSecret), wrongSecret},
		{jwt.SigningMethodHS512, hmac, []byte(testSecret), wrongSecret},
		{jwt.SigningMethodRS256, rsaCfg, k.rsa, k.rsa2},
		{jwt.SigningMethodRS384, rsaCfg, k.rsa, k.rsa2},
		{jwt.SigningMethodRS512, rsaCfg, k.rsa, k.rsa2},
		{jwt.SigningMethodES256, Config{PublicKey: publicPEM(t, k.p256)}, k.p256, k.p256b},
		{jwt.SigningMethodES384, Config{PublicKey: publicPEM(t, k.p384)}, k.p384, k.p384b},
		{jwt.SigningMethodES512, Config{PublicKey: publicPEM(t, k.p521)}, k.p521, k.p521b},
		{jwt.SigningMethodEdDSA, Config{PublicKey: publicPEM(t, k.ed)}, k.ed, k.ed2},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range algCases(t) {
		t.Run(c.method.Alg(), func(t *testing.T) {
			v := newTestVerifier(t, c.cfg)
			claims := validClaims()
			claims["info"] = map[string]any{"name": "Alice", "n": 1}
			claims["channels"] = []string{"news", "user:alice"}
			got, err := v.VerifyConnection(t.Context(), sign(t, c.method, c.key, claims, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != "alice" || string(got.Info) != `{"n":1,"name":"Alice"}` ||
				strings.Join(got.Channels, ",") != "news,user:alice" || got.ExpiresAt.Unix() != claims["exp"] {
				t.Errorf("claims %+v", got)
			}
			_, err = v.VerifyConnection(t.Context(), sign(t, c.method, c.bad, validClaims(), nil))
			wantError(t, err, protocol.ErrUnauthorized, "invalid signature")
		})
	}
}

// unsigned builds a token with the given header and claims and no
// signature, as an attacker would by hand.
func unsigned(t *testing.T, header string, claims jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "."
}

func TestAlgNone(t *testing.T) {
	k := testKeys()
	for _, cfg := range []Config{
		{HMACSecret: testSecret},
		{PublicKey: publicPEM(t, k.rsa)},
		{HMACSecret: testSecret, PublicKey: publicPEM(t, k.ed)},
	} {
		v := newTestVerifier(t, cfg)
		_, err := v.VerifyConnection(t.Context(), unsigned(t, `{"alg":"none","typ":"JWT"}`, validClaims()))
		wantError(t, err, protocol.ErrUnauthorized, "algorithm none not accepted")
		_, err = v.VerifyConnection(t.Context(), unsigned(t, `{"alg":"none"}`, validClaims())+"c2ln")
		wantError(t, err, protocol.ErrUnauthorized, "algorithm none not accepted")
		for _, alg := range []string{"None", "NONE", "", "HS1", "PS256"} {
			_, err = v.VerifyConnection(t.Context(), unsigned(t, `{"alg":"`+alg+`"}`, validClaims()))
			wantError(t, err, protocol.ErrUnauthorized, "")
		}
		_, err = v.VerifySubscription(t.Context(), unsigned(t, `{"alg":"none"}`, jwt.MapClaims{"channel": "x"}))
		wantError(t, err, protocol.ErrUnauthorized, "algorithm none not accepted")
	}
}

// An HS* token whose HMAC key is the configured public key's bytes, as a
// server using the public key as an HMAC secret would accept.
func TestAlgorithmConfusion(t *testing.T) {
	k := testKeys()
	rsaPEM := publicPEM(t, k.rsa)
	pkix, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	pkcs1 := x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)
	edPEM := publicPEM(t, k.ed)
	for _, c := range []struct {
		cfg    Config
		keys   [][]byte
		reason string
	}{
		{Config{PublicKey: rsaPEM}, [][]byte{[]byte(rsaPEM), pkix, pkcs1}, "algorithm HS"},
		{Config{PublicKey: rsaPEM, HMACSecret: testSecret}, [][]byte{[]byte(rsaPEM), pkix, pkcs1}, "invalid signature"},
		{Config{PublicKey: edPEM, HMACSecret: testSecret}, [][]byte{[]byte(edPEM), []byte(k.ed.Public().(ed25519.PublicKey))}, "invalid signature"},
	} {
		v := newTestVerifier(t, c.cfg)
		for _, key := range c.keys {
			for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
				_, err := v.VerifyConnection(t.Context(), sign(t, m, key, validClaims(), nil))
				wantError(t, err, protocol.ErrUnauthorized, c.reason)
			}
		}
	}
}

// A P-384 key verifies ES384 only; with a secret too, HS* uses the secret
// and RS* is unknown.
func TestAlgorithmPinning(t *testing.T) {
	k := testKeys()
	v := newTestVerifier(t, Config{PublicKey: publicPEM(t, k.p384), HMACSecret: testSecret})
	for _, c := range []struct {
		method jwt.SigningMethod
		key    any
		reason string
	}{
		{jwt.SigningMethodES256, k.p256, "algorithm ES256 not accepted"},
		{jwt.SigningMethodES512, k.p521, "algorithm ES512 not accepted"},
		{jwt.SigningMethodRS256, k.rsa, "algorithm RS256 not accepted"},
		{jwt.SigningMethodEdDSA, k.ed, "algorithm EdDSA not accepted"},
	} {
		_, err := v.VerifyConnection(t.Context(), sign(t, c.method, c.key, validClaims(), nil))
		wantError(t, err, protocol.ErrUnauthorized, c.reason)
	}
	for _, c := range []struct {
		method jwt.SigningMethod
		key    any
	}{{jwt.SigningMethodES384, k.p384}, {jwt.SigningMethodHS256, []byte(testSecret)}} {
		if _, err := v.VerifyConnection(t.Context(), sign(t, c.method, c.key, validClaims(), nil)); err != nil {
			t.Errorf("%s: %v", c.method.Alg(), err)
		}
	}
}

func TestExpired(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret, Audience: "herald"})
	old := time.Now().Add(-time.Minute)
	expired := jwt.MapClaims{"sub": "alice", "aud": "herald", "exp": old.Unix()}
	_, err := v.VerifyConnection(t.Context(), hs256(t, expired))
	wantError(t, err, protocol.ErrTokenExpired, "expired at "+old.UTC().Format(time.RFC3339))
	_, err = v.VerifySubscription(t.Context(), hs256(t, jwt.MapClaims{"aud": "herald", "channel": "x", "exp": old.Unix()}))
	wantError(t, err, protocol.ErrTokenExpired, "expired at")

	// Wrong in another way as well: a fresh copy would not help.
	_, err = v.VerifyConnection(t.Context(), hs256(t, jwt.MapClaims{"aud": "other", "exp": old.Unix()}))
	wantError(t, err, protocol.ErrUnauthorized, "wrong audience")
	_, err = v.VerifySubscription(t.Context(), hs256(t, expired))
	wantError(t, err, protocol.ErrUnauthorized, "no channel claim")
	_, err = v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 32)), expired, nil))
	wantError(t, err, protocol.ErrUnauthorized, "invalid signature")

	lenient := newTestVerifier(t, Config{HMACSecret: testSecret, Audience: "herald", Leeway: 2 * time.Minute})
	if _, err := lenient.VerifyConnection(t.Context(), hs256(t, expired)); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestNotBeforeAndIssuedAt(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	lenient := newTestVerifier(t, Config{HMACSecret: testSecret, Leeway: 2 * time.Hour})
	soon := time.Now().Add(time.Hour).Unix()
	for claim, reason := range map[string]string{"nbf": "token not valid yet", "iat": "token issued in the future"} {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{claim: soon}, nil)
		_, err := v.VerifyConnection(t.Context(), tok)
		wantError(t, err, protocol.ErrUnauthorized, reason)
		if _, err := lenient.VerifyConnection(t.Context(), tok); err != nil {
			t.Errorf("%s within leeway: %v", claim, err)
		}
	}
}

func TestAudienceAndIssuer(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret, Audience: "herald", Issuer: "https://id.example"})
	for _, c := range []struct {
		claims jwt.MapClaims
		reason string // "" when accepted
	}{
		{jwt.MapClaims{"aud": "herald", "iss": "https://id.example"}, ""},
		{jwt.MapClaims{"aud": []string{"api", "herald"}, "iss": "https://id.example"}, ""},
		{jwt.MapClaims{"aud": "api", "iss": "https://id.example"}, "wrong audience"},
		{jwt.MapClaims{"aud": []string{}, "iss": "https://id.example"}, "wrong audience"},
		{jwt.MapClaims{"iss": "https://id.example"}, "wrong audience"},
		{jwt.MapClaims{"aud": "herald", "iss": "https://evil.example"}, "wrong issuer"},
		{jwt.MapClaims{"aud": "herald"}, "wrong issuer"},
	} {
		_, err := v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), c.claims, nil))
		if c.reason == "" {
			if err != nil {
				t.Errorf("%v: %v", c.claims, err)
			}
			continue
		}
		wantError(t, err, protocol.ErrUnauthorized, c.reason)
	}
	open := newTestVerifier(t, Config{HMACSecret: testSecret})
	if _, err := open.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"aud": "x", "iss": "y"}, nil)); err != nil {
		t.Errorf("aud and iss unchecked when not configured: %v", err)
	}
}

func TestGarbage(t *testing.T) {
	v := newTestVerifier(t, Config{HMACSecret: testSecret, PublicKey: publicPEM(t, testKeys().ed)})
	random := make([]byte, 300)
	_, _ = rand.Read(random)
	valid := sign(t, jwt.SigningMethodHS256, []byte(testSecret), validClaims(), nil)
	parts := strings.Split(valid, ".")
	huge := validClaims()
	huge["pad"] = strings.Repeat("x", 9000)
	for _, c := range []struct{ token, reason string }{
		{"", "empty token"},
		{"a.b.c", "malformed token"},
		{"...", "malformed token"},
		{"a.b", "malformed token"},
		{valid + ".", "malformed token"},
		{base64.RawURLEncoding.EncodeToString(random), "malformed token"},
		{base64.RawURLEncoding.EncodeToString(random[:100]) + "." + base64.RawURLEncoding.EncodeToString(random[100:]) + ".", "malformed token"},
		{parts[0] + "." + parts[1] + ".", "invalid signature"},
		{parts[0] + "." + parts[1] + "." + flip(parts[2]), "invalid signature"},
		{parts[0] + ".e30." + parts[2], "invalid signature"},
		{sign(t, jwt.SigningMethodHS256, []byte(testSecret), huge, nil), "token longer than 8192 bytes"},
		{strings.Repeat("a", 9000), "token longer than 8192 bytes"},
	} {
		for _, verify := range []func() error{
			func() error { _, err := v.VerifyConnection(t.Context(), c.token); return err },
			func() error { _, err := v.VerifySubscription(t.Context(), c.token); return err },
		} {
			wantError(t, verify(), protocol.ErrUnauthorized, c.reason)
		}
	}
}

func TestNoKeys(t *testing.T) {
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), validClaims(), nil)
	for _, v := range []*Verifier{newTestVerifier(t, Config{Audience: "herald"}), {}} {
		for _, tok := range []string{token, "", "a.b.c"} {
			_, err := v.VerifyConnection(t.Context(), tok)
			wantError(t, err, protocol.ErrUnauthorized, "no token keys configured")
			_, err = v.VerifySubscription(t.Context(), tok)
			wantError(t, err, protocol.ErrUnauthorized, "no token keys configured")
		}
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{HMACSecret: "short"},
		{PublicKey: publicPEM(t, testKeys().rsaSmall)},
		{JWKSURL: "ftp://keys.example/jwks.json"},
	} {
		if v, err := New(t.Context(), cfg); err == nil || v != nil {
			t.Errorf("New(%+v) = %v, %v", cfg, v, err)
		}
	}
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
