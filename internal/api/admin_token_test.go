package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestAdminTokens(t *testing.T) {
	secret := []byte(testAdminSecret)
	a := testAdminTokens(t, testAdminSecret, time.Hour)
	now := time.Now()
	tok := mustMint(t, a, now)
	exp, err := a.Verify(tok)
	if err != nil || exp.Expires.Unix() != now.Add(time.Hour).Unix() || exp.Login.Unix() != now.Unix() {
		t.Fatalf("verify: %v, %v", exp, err)
	}

	sign := func(method jwt.SigningMethod, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": adminSubject, "aud": AdminAudience, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	notAdmin := map[string]string{
		"garbage":      "not a token",
		"other secret": mustMint(t, testAdminTokens(t, strings.Repeat("y", 32), time.Hour), now),
		// The algorithm is pinned: HS512 with the right secret is refused.
		"HS512": sign(jwt.SigningMethodHS512, valid()),
		"none": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
	}
	for name, tok := range notAdmin {
		if _, err := a.Verify(tok); !errors.Is(err, ErrNotAdminToken) {
			t.Errorf("%s: %v, want ErrNotAdminToken", name, err)
		}
	}
	wrong := map[string]jwt.MapClaims{
		"no exp":       {"sub": adminSubject, "aud": AdminAudience},
		"other aud":    {"sub": adminSubject, "aud": "herald", "exp": now.Add(time.Minute).Unix()},
		"other sub":    {"sub": "alice", "aud": AdminAudience, "exp": now.Add(time.Minute).Unix()},
		"future iat":   {"sub": adminSubject, "aud": AdminAudience, "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()},
		"connect-like": {"sub": "alice", "exp": now.Add(time.Minute).Unix()},
		// Without the login time a session could be renewed for ever.
		"no auth_time": valid(),
	}
	for name, claims := range wrong {
		if _, err := a.Verify(sign(jwt.SigningMethodHS256, claims)); protocol.AsError(err).Code != protocol.ErrUnauthorized.Code {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
	expired := valid()
	expired["exp"] = now.Add(-time.Minute).Unix()
	if _, err := a.Verify(sign(jwt.SigningMethodHS256, expired)); protocol.AsError(err).Code != protocol.ErrTokenExpired.Code {
		t.Errorf("expired: %v", err)
	}
}

// Rekey switches the secret for minting and verifying at once, and keeps
// the old one when the new one is too short.
func TestAdminTokensRekey(t *testing.T) {
	a := testAdminTokens(t, testAdminSecret, time.Hour)
	old := mustMint(t, a, time.Now())
	if err := a.Rekey([]byte("short")); err == nil {
		t.Fatal("a short secret was taken")
	}
	if _, err := a.Verify(old); err != nil {
		t.Fatalf("a refused rekey changed the secret: %v", err)
	}
	if err := a.Rekey([]byte(strings.Repeat("z", 32))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(old); !errors.Is(err, ErrNotAdminToken) {
		t.Fatalf("a token of the old secret: %v", err)
	}
	if _, err := a.Verify(mustMint(t, a, time.Now())); err != nil {
		t.Fatalf("a token of the new secret: %v", err)
	}
}
