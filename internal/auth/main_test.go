package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSecret is exactly as long as an HMAC secret must be.
const testSecret = "0123456789abcdef0123456789abcdef"

// testKeyPairs are the asymmetric keys the tests sign with. They are made
// once per test binary: generating RSA keys is slow.
type testKeyPairs struct {
	rsa, rsa2, rsaSmall    *rsa.PrivateKey
	p256, p384, p521, p224 *ecdsa.PrivateKey
	p256b, p384b, p521b    *ecdsa.PrivateKey
	ed, ed2                ed25519.PrivateKey
}

var testKeys = sync.OnceValue(func() testKeyPairs {
	rsaKey := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return k
	}
	ecKey := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	edKey := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return testKeyPairs{
		rsa: rsaKey(2048), rsa2: rsaKey(2048), rsaSmall: rsaKey(1024),
		p256: ecKey(elliptic.P256()), p384: ecKey(elliptic.P384()), p521: ecKey(elliptic.P521()), p224: ecKey(elliptic.P224()),
		p256b: ecKey(elliptic.P256()), p384b: ecKey(elliptic.P384()), p521b: ecKey(elliptic.P521()),
		ed: edKey(), ed2: edKey(),
	}
})

// publicPEM encodes the public half of a private key as a PUBLIC KEY block.
func publicPEM(t testing.TB, priv crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign makes a token of claims signed with key, adding header fields.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validClaims are a connection token's claims, valid for an hour.
func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// wantError fails unless err is exactly a *protocol.Error with want's code
// whose message contains reason.
func wantError(t testing.TB, err error, want *protocol.Error, reason string) {
	t.Helper()
	pe, ok := err.(*protocol.Error)
	switch {
	case !ok:
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	case !errors.Is(err, want) || protocol.AsError(err).Code != want.Code:
		t.Fatalf("error %v, want code %d", err, want.Code)
	case !strings.Contains(pe.Message, reason):
		t.Fatalf("error %q does not say %q", pe.Message, reason)
	}
}
