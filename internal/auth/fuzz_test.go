package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// fuzzKey is fixed so that every fuzzing worker process, which builds its
// own Verifier, shares the key the seeds were signed with.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func FuzzVerifyConnection(f *testing.F) {
	fuzzVerify(f, func(v *Verifier, ctx context.Context, token string) (any, error) {
		return v.VerifyConnection(ctx, token)
	})
}

func FuzzVerifySubscription(f *testing.F) {
	fuzzVerify(f, func(v *Verifier, ctx context.Context, token string) (any, error) {
		return v.VerifySubscription(ctx, token)
	})
}

// fuzzVerify checks that verify, whatever the token, does not panic,
// fails only with code 101 or 109 without repeating the token, accepts only
// tokens whose signature an independent check confirms, and answers the
// same twice.
func fuzzVerify(f *testing.F, verify func(v *Verifier, ctx context.Context, token string) (any, error)) {
	v, err := New(f.Context(), Config{HMACSecret: testSecret, PublicKey: publicPEM(f, fuzzKey)})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got, err := verify(v, t.Context(), token)
		if err != nil {
			pe, ok := err.(*protocol.Error)
			if !ok || (pe.Code != protocol.ErrUnauthorized.Code && pe.Code != protocol.ErrTokenExpired.Code) {
				t.Fatalf("error %v (%T), want a *protocol.Error with code 101 or 109", err, err)
			}
			if len(token) >= 8 && strings.Contains(pe.Message, token) {
				t.Fatalf("error %q repeats the token", pe.Message)
			}
			return
		}
		checkSignature(t, token)
		again, err := verify(v, t.Context(), token)
		if err != nil || !reflect.DeepEqual(got, again) {
			t.Fatalf("second verification: %+v, %v; first %+v", again, err, got)
		}
	})
}

// checkSignature fails t unless token is signed with testSecret or
// fuzzKey, checked without the jwt package.
func checkSignature(t *testing.T, token string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token of %d parts", len(parts))
	}
	rawHeader, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	var header struct {
		Alg string `json:"alg"`
	}
	if err1 != nil || err2 != nil || json.Unmarshal(rawHeader, &header) != nil {
		t.Fatalf("accepted an undecodable token: %v, %v", err1, err2)
	}
	signed := []byte(parts[0] + "." + parts[1])
	mac := func(h func() hash.Hash) bool {
		m := hmac.New(h, []byte(testSecret))
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	}
	var ok bool
	switch header.Alg {
	case "HS256":
		ok = mac(sha256.New)
	case "HS384":
		ok = mac(sha512.New384)
	case "HS512":
		ok = mac(sha512.New)
	case "EdDSA":
		ok = ed25519.Verify(fuzzKey.Public().(ed25519.PublicKey), signed, sig)
	default:
		t.Fatalf("accepted algorithm %q", header.Alg)
	}
	if !ok {
		t.Fatalf("accepted a token whose %s signature does not hold", header.Alg)
	}
}

// fuzzSeeds are tokens of both kinds, good and bad in the ways that
// matter. None has an exp near the present, so verifying one twice gives
// the same answer.
func fuzzSeeds(f *testing.F) []string {
	mint := func(o MintOptions) string {
		o.Secret = []byte(testSecret)
		tok, err := Mint(o)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	long := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	info := json.RawMessage(`{"name":"Alice","tags":["a","b"]}`)
	edSigned := func(claims jwt.MapClaims) string {
		return sign(f, jwt.SigningMethodEdDSA, fuzzKey, claims, map[string]any{"kid": "k1"})
	}
	alice := mint(MintOptions{UserID: "alice", Channels: []string{"news", "user:alice"}, Info: info})
	parts := strings.Split(alice, ".")
	enc := base64.RawURLEncoding.EncodeToString
	return []string{
		alice,
		mint(MintOptions{UserID: "bob", Algorithm: "HS384"}),
		mint(MintOptions{Algorithm: "HS512", Info: json.RawMessage(`"x"`)}),
		mint(MintOptions{UserID: "alice", Channel: "private:reports", Info: info}),
		mint(MintOptions{Channel: "x"}),
		mint(MintOptions{UserID: "alice", TTL: time.Hour, Now: func() time.Time { return long }}),
		mint(MintOptions{Channel: "x", TTL: time.Hour, Now: func() time.Time { return long }}),
		edSigned(jwt.MapClaims{"sub": "carol", "channels": []string{"a"}}),
		edSigned(jwt.MapClaims{"sub": "carol", "channel": "b", "nbf": 4102444800}),
		sign(f, jwt.SigningMethodHS256, []byte(strings.Repeat("z", 32)), jwt.MapClaims{"sub": "mallory"}, nil),
		enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"channel":"x"}`)) + ".",
		parts[0] + "." + parts[1] + ".",
		"",
		"a.b.c",
		"....",
		"eyJhbGciOiJIUzI1NiJ9.e30.",
		"c29tZSByYW5kb20gYnl0ZXMgdGhhdCBhcmUgbm90IGEgdG9rZW4",
		strings.Repeat("A", 9000),
	}
}
