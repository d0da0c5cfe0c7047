package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// jwksHandler serves a JWKS that tests change as they go.
type jwksHandler struct {
	mu      sync.Mutex
	keys    []jwkset.JWKMarshal
	fetches atomic.Int32
}

func (h *jwksHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.fetches.Add(1)
	h.mu.Lock()
	body, err := json.Marshal(jwkset.JWKSMarshal{Keys: h.keys})
	h.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// add publishes key (public, or an HMAC secret as an "oct" key) under kid.
func (h *jwksHandler) add(t *testing.T, kid string, key any, meta jwkset.JWKMetadataOptions) {
	t.Helper()
	meta.KID = kid
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: meta, Marshal: jwkset.JWKMarshalOptions{Private: true}})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.keys = append(h.keys, j.Marshal())
	h.mu.Unlock()
}

func serveJWKS(t *testing.T, h *jwksHandler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/.well-known/jwks.json"
}

func withKID(kid string) map[string]any { return map[string]any{"kid": kid} }

func TestJWKS(t *testing.T) {
	k := testKeys()
	h := &jwksHandler{}
	h.add(t, "r", k.rsa.Public(), jwkset.JWKMetadataOptions{})
	h.add(t, "e", k.p256.Public(), jwkset.JWKMetadataOptions{ALG: jwkset.AlgES256, USE: jwkset.UseSig})
	h.add(t, "d", k.ed.Public(), jwkset.JWKMetadataOptions{})
	h.add(t, "p384", k.p384.Public(), jwkset.JWKMetadataOptions{})
	h.add(t, "r512", k.rsa2.Public(), jwkset.JWKMetadataOptions{ALG: jwkset.AlgRS512})
	h.add(t, "enc", k.rsa2.Public(), jwkset.JWKMetadataOptions{USE: jwkset.UseEnc})
	h.add(t, "small", k.rsaSmall.Public(), jwkset.JWKMetadataOptions{})
	url := serveJWKS(t, h)
	v := newTestVerifier(t, Config{JWKSURL: url})

	for _, c := range []struct {
		method jwt.SigningMethod
		key    any
		header map[string]any
		reason string // "" when accepted
	}{
		{jwt.SigningMethodRS256, k.rsa, withKID("r"), ""},
		{jwt.SigningMethodRS512, k.rsa, withKID("r"), ""},
		{jwt.SigningMethodES256, k.p256, withKID("e"), ""},
		{jwt.SigningMethodEdDSA, k.ed, withKID("d"), ""},
		{jwt.SigningMethodES384, k.p384, withKID("p384"), ""},
		{jwt.SigningMethodRS512, k.rsa2, withKID("r512"), ""},
		// No kid: any key of the set that fits.
		{jwt.SigningMethodRS256, k.rsa, nil, ""},
		{jwt.SigningMethodES384, k.p384, nil, ""},
		{jwt.SigningMethodRS256, k.rsa2, nil, "invalid signature"}, // "r512" is for RS512, "enc" not for signatures
		{jwt.SigningMethodRS256, k.rsa, withKID("e"), "no key for algorithm RS256"},
		{jwt.SigningMethodES256, k.p256, withKID("p384"), "no key for algorithm ES256"},
		{jwt.SigningMethodES384, k.p384, withKID("e"), "no key for algorithm ES384"},
		{jwt.SigningMethodRS256, k.rsa2, withKID("r512"), "no key for algorithm RS256"},
		{jwt.SigningMethodRS256, k.rsa2, withKID("enc"), "no key for algorithm RS256"},
		{jwt.SigningMethodRS256, k.rsaSmall, withKID("small"), "no key for algorithm RS256"},
		{jwt.SigningMethodRS256, k.rsa2, withKID("r"), "invalid signature"},
		{jwt.SigningMethodRS256, k.rsa, withKID("nope"), "unknown signing key"},
		{jwt.SigningMethodRS256, k.rsa, withKID(""), "unknown signing key"},
		{jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": 7}, "kid is not a string"},
		{jwt.SigningMethodHS256, []byte(testSecret), withKID("r"), "algorithm HS256 not accepted"},
	} {
		_, err := v.VerifyConnection(t.Context(), sign(t, c.method, c.key, validClaims(), c.header))
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s %v: %v", c.method.Alg(), c.header, err)
			}
			continue
		}
		wantError(t, err, protocol.ErrUnauthorized, c.reason)
	}
	if n := h.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: at New and for the first unknown kid only", n)
	}
}

// A symmetric key published in a JWKS never verifies a token, with or
// without a configured secret of its own.
func TestJWKSOctKeyUnused(t *testing.T) {
	octSecret := []byte(strings.Repeat("k", 32))
	h := &jwksHandler{}
	h.add(t, "o", octSecret, jwkset.JWKMetadataOptions{})
	h.add(t, "o256", octSecret, jwkset.JWKMetadataOptions{ALG: jwkset.AlgHS256})
	h.add(t, "e", testKeys().p256.Public(), jwkset.JWKMetadataOptions{})
	url := serveJWKS(t, h)
	jwksOnly := newTestVerifier(t, Config{JWKSURL: url})
	withSecret := newTestVerifier(t, Config{JWKSURL: url, HMACSecret: testSecret})
	for _, kid := range []string{"o", "o256", ""} {
		header := withKID(kid)
		if kid == "" {
			header = nil
		}
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			tok := sign(t, m, octSecret, validClaims(), header)
			_, err := jwksOnly.VerifyConnection(t.Context(), tok)
			wantError(t, err, protocol.ErrUnauthorized, "algorithm "+m.Alg()+" not accepted")
			_, err = withSecret.VerifyConnection(t.Context(), tok)
			wantError(t, err, protocol.ErrUnauthorized, "invalid signature")
		}
	}
	// The configured secret, though, verifies HS256 whatever the kid says.
	if _, err := withSecret.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), validClaims(), withKID("o"))); err != nil {
		t.Error(err)
	}
}

// A key rotated into the set is picked up by the first token naming it.
func TestJWKSUnknownKIDRefresh(t *testing.T) {
	k := testKeys()
	h := &jwksHandler{}
	h.add(t, "a", k.rsa.Public(), jwkset.JWKMetadataOptions{})
	v, err := newVerifier(t.Context(), Config{JWKSURL: serveJWKS(t, h)}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tokA := sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), withKID("a"))
	tokB := sign(t, jwt.SigningMethodES256, k.p256, validClaims(), withKID("b"))

	// Tokens with known kids keep verifying while the set is refreshed.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := v.VerifyConnection(ctx, tokA); err != nil {
					t.Errorf("kid a during refreshes: %v", err)
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer stop()

	_, err = v.VerifyConnection(t.Context(), tokB)
	wantError(t, err, protocol.ErrUnauthorized, "unknown signing key")
	h.add(t, "b", k.p256.Public(), jwkset.JWKMetadataOptions{})
	testkit.WaitFor(t, 10*time.Second, "kid b to verify", func() bool {
		_, err := v.VerifyConnection(t.Context(), tokB)
		return err == nil
	})
}

// An unknown kid refreshes the set at most once per interval, and a token
// arriving when no refresh is allowed is refused at once, not held.
func TestJWKSUnknownKIDRateLimit(t *testing.T) {
	k := testKeys()
	h := &jwksHandler{}
	h.add(t, "a", k.rsa.Public(), jwkset.JWKMetadataOptions{})
	v := newTestVerifier(t, Config{JWKSURL: serveJWKS(t, h)})
	start := time.Now()
	for _, kid := range []string{"x", "y", "z"} {
		_, err := v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), withKID(kid)))
		wantError(t, err, protocol.ErrUnauthorized, "unknown signing key")
	}
	if n := h.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused unknown kids in %v", d)
	}
}

// A JWKS endpoint down when the server starts does not stop it: tokens are
// refused until the keys can be fetched.
func TestJWKSDownAtNew(t *testing.T) {
	k := testKeys()
	h := &jwksHandler{}
	h.add(t, "a", k.ed.Public(), jwkset.JWKMetadataOptions{})
	// Until up is set, every connection is cut before an answer, as from a
	// dead endpoint; the address stays this test's, so no port is reused.
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up.Load() {
			h.ServeHTTP(w, r)
			return
		}
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}))
	t.Cleanup(srv.Close)

	var log testkit.LockedBuffer
	cfg := Config{JWKSURL: srv.URL + "/jwks", Logger: slog.New(slog.NewTextHandler(&log, nil))}
	v, err := newVerifier(t.Context(), cfg, time.Millisecond)
	if err != nil {
		t.Fatalf("New with the JWKS endpoint down: %v", err)
	}
	if !strings.Contains(log.String(), "fetching the JWKS failed") {
		t.Errorf("no warning logged: %q", log.String())
	}
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), withKID("a"))
	_, err = v.VerifyConnection(t.Context(), tok)
	wantError(t, err, protocol.ErrUnauthorized, "unknown signing key")
	_, err = v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), nil))
	wantError(t, err, protocol.ErrUnauthorized, "no key for algorithm EdDSA")

	up.Store(true)
	testkit.WaitFor(t, 10*time.Second, "the token to verify once the endpoint is up", func() bool {
		_, err := v.VerifyConnection(t.Context(), tok)
		return err == nil
	})
}

// The public half of a private key published by mistake is still usable.
func TestJWKSPrivateKeyPublished(t *testing.T) {
	k := testKeys()
	h := &jwksHandler{}
	h.add(t, "p", crypto.Signer(k.ed), jwkset.JWKMetadataOptions{})
	v := newTestVerifier(t, Config{JWKSURL: serveJWKS(t, h)})
	if _, err := v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), withKID("p"))); err != nil {
		t.Error(err)
	}
}
