package auth

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"
)

// minHMACSecret is the shortest HMAC secret accepted: RFC 7518 §3.2 wants a
// key at least as long as the hash output, 32 bytes for HS256.
const minHMACSecret = 32

// minJWKSRefresh catches a refresh interval written without a unit, which
// koanf reads as nanoseconds and which would hammer the JWKS endpoint.
const minJWKSRefresh = time.Second

// Config says where token keys come from and which tokens to accept. The
// koanf tags are the option names under "auth:" in the server config file.
// The zero Config accepts no token.
type Config struct {
	// HMACSecret enables HS256, HS384 and HS512. It must be at least 32
	// bytes.
	HMACSecret string `koanf:"hmac_secret"`

	// PublicKey is a PEM public key enabling the algorithms of its type:
	// RS256, RS384 and RS512 for an RSA key of at least 2048 bits; ES256,
	// ES384 or ES512 for a P-256, P-384 or P-521 key; EdDSA for an Ed25519
	// key. The first PEM block is used: "PUBLIC KEY", "RSA PUBLIC KEY" or
	// "CERTIFICATE" (whose key is used; its validity dates are not checked).
	PublicKey string `koanf:"public_key"`

	// PublicKeyFile names a file holding PublicKey instead.
	PublicKeyFile string `koanf:"public_key_file"`

	// JWKSURL is a JSON Web Key Set endpoint. Its RSA, EC and Ed25519 keys
	// verify RS*, ES* and EdDSA tokens; symmetric ("oct") keys in it are
	// never used. Keys are fetched by New, every JWKSRefresh, and when a
	// token names a "kid" not yet known (at most every 30 seconds). Use
	// https: keys fetched over plain http can be replaced in transit. It
	// cannot be combined with PublicKey: publish that key in the set.
	JWKSURL string `koanf:"jwks_url"`

	// JWKSRefresh is how often the JWKS is fetched again (1h when zero).
	JWKSRefresh time.Duration `koanf:"jwks_refresh"`

	// Audience, when set, must be one of a token's "aud" values.
	Audience string `koanf:"audience"`

	// Issuer, when set, must be a token's "iss".
	Issuer string `koanf:"issuer"`

	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	Leeway time.Duration `koanf:"leeway"`

	// Logger is told when fetching the JWKS fails; nil discards that. It
	// cannot come from a file.
	Logger *slog.Logger `koanf:"-"`
}

// Enabled reports whether any key source is configured: without one, every
// token is refused.
func (c Config) Enabled() bool {
	return c.HMACSecret != "" || c.PublicKey != "" || c.PublicKeyFile != "" || c.JWKSURL != ""
}

// Validate reports every invalid option at once, each error naming the
// option as "auth.<name>". It reads PublicKeyFile.
func (c Config) Validate() error {
	_, err := c.check()
	return err
}

// check validates c and returns the keys it holds directly; JWKS keys are
// fetched later, by New.
func (c Config) check() (keySet, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("auth.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	var ks keySet
	if c.HMACSecret != "" {
		if len(c.HMACSecret) < minHMACSecret {
			bad("hmac_secret", "%d bytes is too short: HMAC secrets need at least %d (RFC 7518 §3.2)", len(c.HMACSecret), minHMACSecret)
		} else {
			ks.hmac = []byte(c.HMACSecret)
		}
	}
	var pub crypto.PublicKey
	var err error
	switch {
	case c.PublicKey != "" && c.PublicKeyFile != "":
		bad("public_key_file", "set together with auth.public_key: choose one")
	case c.PublicKey != "":
		if pub, err = parsePublicKey([]byte(c.PublicKey)); err != nil {
			bad("public_key", "%v", err)
		}
	case c.PublicKeyFile != "":
		var data []byte
		if data, err = os.ReadFile(c.PublicKeyFile); err == nil {
			pub, err = parsePublicKey(data)
		}
		if err != nil {
			bad("public_key_file", "%v", err)
		}
	}
	ks.public = pub
	if c.JWKSURL != "" {
		if c.PublicKey != "" || c.PublicKeyFile != "" {
			bad("jwks_url", "set together with a public key: publish that key in the JWKS instead")
		}
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("jwks_url", "%q is not an https:// or http:// URL", c.JWKSURL)
		}
	}
	if c.JWKSRefresh < 0 || (c.JWKSRefresh > 0 && c.JWKSRefresh < minJWKSRefresh) {
		bad("jwks_refresh", "%v is below %v: give a unit, as in 1h", c.JWKSRefresh, minJWKSRefresh)
	}
	if c.Leeway < 0 {
		bad("leeway", "must not be negative, got %v", c.Leeway)
	}
	return ks, errors.Join(errs...)
}
