package auth

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestParsePublicKey(t *testing.T) {
	k := testKeys()
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.p256.Public(), k.p256)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519DER, _ := x509.MarshalPKIXPublicKey(x25519.PublicKey())
	rsaPriv, _ := x509.MarshalPKCS8PrivateKey(k.rsa)
	for _, c := range []struct {
		pem     string
		methods []string // nil: refused
		err     string
	}{
		{publicPEM(t, k.rsa), rsaMethods, ""},
		{pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)), rsaMethods, ""},
		{publicPEM(t, k.p256), []string{"ES256"}, ""},
		{publicPEM(t, k.p384), []string{"ES384"}, ""},
		{"leading text\n" + publicPEM(t, k.p521), []string{"ES512"}, ""},
		{publicPEM(t, k.ed), eddsaMethods, ""},
		{pemOf("CERTIFICATE", cert), []string{"ES256"}, ""},
		{publicPEM(t, k.rsaSmall), nil, "1024 bits"},
		{pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsaSmall.PublicKey)), nil, "1024 bits"},
		{publicPEM(t, k.p224), nil, "curve P-224"},
		{pemOf("PUBLIC KEY", x25519DER), nil, "not RSA, ECDSA or Ed25519"},
		{pemOf("PRIVATE KEY", rsaPriv), nil, "give the public key"},
		{pemOf("EC PARAMETERS", []byte{1}), nil, `"EC PARAMETERS"`},
		{pemOf("PUBLIC KEY", []byte("junk")), nil, "cannot parse the PUBLIC KEY"},
		{"no pem here", nil, "no PEM block"},
		{"", nil, "no PEM block"},
	} {
		key, err := parsePublicKey([]byte(c.pem))
		if c.methods == nil {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%.40q: error %v, want %q", c.pem, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%.40q: %v", c.pem, err)
			continue
		}
		if m, _ := methodsFor(key); !slices.Equal(m, c.methods) {
			t.Errorf("%.40q: methods %v, want %v", c.pem, m, c.methods)
		}
	}
}

// Each public key verifies its own algorithms and no other.
func TestUsable(t *testing.T) {
	k := testKeys()
	all := slices.Concat(hmacMethods, jwksMethods, []string{"PS256", "none"})
	for _, c := range []struct {
		key  crypto.PublicKey
		want []string
	}{
		{k.rsa.Public(), []string{"RS256", "RS384", "RS512"}},
		{k.rsaSmall.Public(), nil},
		{k.p256.Public(), []string{"ES256"}},
		{k.p384.Public(), []string{"ES384"}},
		{k.p521.Public(), []string{"ES512"}},
		{k.p224.Public(), nil},
		{k.ed.Public(), []string{"EdDSA"}},
		{[]byte(testSecret), nil},
		{k.rsa, nil}, // a private key is no public key
	} {
		for _, alg := range all {
			if got, want := usable(c.key, alg), slices.Contains(c.want, alg); got != want {
				t.Errorf("usable(%T, %s) = %v", c.key, alg, got)
			}
		}
	}
}

// The key lookup never hands a key to another family's algorithm, whatever
// the parser let through.
func TestKeyFuncFamilies(t *testing.T) {
	k := testKeys()
	both := &keySet{hmac: []byte(testSecret), public: k.rsa.Public()}
	rsaOnly := &keySet{public: k.rsa.Public()}
	none := jwt.SigningMethodNone
	for _, c := range []struct {
		ks     *keySet
		method jwt.SigningMethod
		want   any // nil: no key
	}{
		{both, jwt.SigningMethodHS256, both.hmac},
		{both, jwt.SigningMethodHS512, both.hmac},
		{both, jwt.SigningMethodRS384, both.public},
		{both, jwt.SigningMethodES256, nil},
		{both, jwt.SigningMethodEdDSA, nil},
		{both, jwt.SigningMethodPS256, nil},
		{both, none, nil},
		{rsaOnly, jwt.SigningMethodHS256, nil},
		{rsaOnly, jwt.SigningMethodRS256, rsaOnly.public},
		{&keySet{public: k.p384.Public()}, jwt.SigningMethodES256, nil},
		{&keySet{hmac: []byte(testSecret)}, jwt.SigningMethodRS256, nil},
	} {
		got, err := c.ks.keyFunc(t.Context())(&jwt.Token{Method: c.method, Header: map[string]any{"alg": c.method.Alg()}})
		switch {
		case c.want == nil && (err == nil || got != nil):
			t.Errorf("%s: got key %T, %v", c.method.Alg(), got, err)
		case c.want != nil && (err != nil || !sameKey(got, c.want)):
			t.Errorf("%s: got %T, %v", c.method.Alg(), got, err)
		}
	}
}

func sameKey(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && string(ab) == string(bb)
	}
	return a == b
}
