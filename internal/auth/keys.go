package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// minRSABits is the smallest RSA modulus accepted, as NIST SP 800-131A asks.
const minRSABits = 2048

// Algorithm families. A key verifies the algorithms of one family only.
var (
	hmacMethods  = []string{"HS256", "HS384", "HS512"}
	rsaMethods   = []string{"RS256", "RS384", "RS512"}
	eddsaMethods = []string{"EdDSA"}
	// ecMethods pins each ECDSA algorithm to its curve (RFC 7518 §3.4).
	ecMethods = map[elliptic.Curve][]string{
		elliptic.P256(): {"ES256"},
		elliptic.P384(): {"ES384"},
		elliptic.P521(): {"ES512"},
	}
	// jwksMethods are what a JWKS may verify: never HS*, since a key
	// published in a set, symmetric or not, is public knowledge.
	jwksMethods = slices.Concat(rsaMethods, []string{"ES256", "ES384", "ES512"}, eddsaMethods)
)

// parsePublicKey reads the public key in the first PEM block of data.
func parsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("the PEM block is a %s: give the public key, the server never needs the private one", block.Type)
		}
		return nil, fmt.Errorf("the PEM block is a %q, not a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse the %s: %w", block.Type, err)
	}
	if _, err := methodsFor(key); err != nil {
		return nil, err
	}
	return key, nil
}

// methodsFor lists the algorithms public key key may verify, or says why
// it may verify none.
func methodsFor(key crypto.PublicKey) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("the RSA key has %d bits, at least %d are needed", n, minRSABits)
		}
		return rsaMethods, nil
	case *ecdsa.PublicKey:
		if m, ok := ecMethods[k.Curve]; ok {
			return m, nil
		}
		return nil, fmt.Errorf("the ECDSA key is on curve %s, not P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("the Ed25519 key has %d bytes, not %d", len(k), ed25519.PublicKeySize)
		}
		return eddsaMethods, nil
	}
	return nil, fmt.Errorf("a %T key is not RSA, ECDSA or Ed25519", key)
}

// usable reports whether public key key may verify a token signed with alg.
func usable(key crypto.PublicKey, alg string) bool {
	m, err := methodsFor(key)
	return err == nil && slices.Contains(m, alg)
}

// keySet holds a Verifier's keys: at most one source per algorithm family.
type keySet struct {
	hmac   []byte
	public crypto.PublicKey
	jwks   jwkset.Storage
}

// methods lists the algorithms the keys can verify, for
// jwt.WithValidMethods.
func (ks *keySet) methods() []string {
	var m []string
	if ks.hmac != nil {
		m = append(m, hmacMethods...)
	}
	if ks.public != nil {
		pm, _ := methodsFor(ks.public)
		m = append(m, pm...)
	}
	if ks.jwks != nil {
		m = append(m, jwksMethods...)
	}
	return m
}

// keyFunc returns the key for a token's algorithm. It hands out the HMAC
// secret only for HS* and a public key only for its own algorithms, so
// that however the parser behaves, no key is ever used with another
// family's algorithm.
func (ks *keySet) keyFunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		switch {
		case slices.Contains(hmacMethods, alg):
			if ks.hmac != nil {
				return ks.hmac, nil
			}
		case ks.public != nil:
			if usable(ks.public, alg) {
				return ks.public, nil
			}
		case ks.jwks != nil:
			return jwksKey(ctx, ks.jwks, t.Header["kid"], alg)
		}
		return nil, noKeyFor(alg)
	}
}

func noKeyFor(alg string) *protocol.Error {
	return protocol.ErrUnauthorized.With("no key for algorithm %s", alg)
}
