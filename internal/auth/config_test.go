package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestValidate(t *testing.T) {
	k := testKeys()
	rsaPEM := publicPEM(t, k.rsa)
	for _, c := range []struct {
		cfg  Config
		errs []string // nil: valid
	}{
		{Config{}, nil},
		{Config{HMACSecret: testSecret, Audience: "a", Issuer: "i", Leeway: time.Second}, nil},
		{Config{HMACSecret: testSecret, PublicKey: rsaPEM}, nil},
		{Config{HMACSecret: testSecret, JWKSURL: "https://id.example/.well-known/jwks.json", JWKSRefresh: time.Minute}, nil},
		{Config{JWKSURL: "http://127.0.0.1:8080/jwks"}, nil},
		{Config{HMACSecret: testSecret[1:]}, []string{"auth.hmac_secret: 31 bytes is too short"}},
		{Config{PublicKey: publicPEM(t, k.rsaSmall)}, []string{"auth.public_key: the RSA key has 1024 bits"}},
		{Config{PublicKey: publicPEM(t, k.p224)}, []string{"auth.public_key: the ECDSA key is on curve P-224"}},
		{Config{PublicKey: "not pem"}, []string{"auth.public_key: no PEM block"}},
		{Config{PublicKey: rsaPEM, PublicKeyFile: "/x.pem"}, []string{"auth.public_key_file: set together with auth.public_key"}},
		{Config{PublicKeyFile: "/nonexistent/key.pem"}, []string{"auth.public_key_file: open /nonexistent/key.pem"}},
		{Config{JWKSURL: "keys.example/jwks"}, []string{"auth.jwks_url:"}},
		{Config{JWKSURL: "file:///etc/jwks.json"}, []string{"auth.jwks_url:"}},
		{Config{JWKSURL: "https://id.example/jwks", PublicKey: rsaPEM}, []string{"auth.jwks_url: set together with a public key"}},
		{Config{JWKSURL: "https://id.example/jwks", JWKSRefresh: 60}, []string{"auth.jwks_refresh: 60ns is below 1s"}},
		{Config{JWKSRefresh: -time.Hour}, []string{"auth.jwks_refresh:"}},
		{Config{Leeway: -time.Second}, []string{"auth.leeway: must not be negative"}},
		// Every problem at once.
		{Config{HMACSecret: "tiny", PublicKey: "junk", Leeway: -1, JWKSURL: "::"}, []string{"auth.hmac_secret", "auth.public_key", "auth.leeway", "auth.jwks_url: set together", `auth.jwks_url: "::"`}},
	} {
		err := c.cfg.Validate()
		if c.errs == nil {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: valid, want %q", c.cfg, c.errs)
			continue
		}
		for _, want := range c.errs {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%+v: %q does not say %q", c.cfg, err, want)
			}
		}
		if len(strings.Split(err.Error(), "\n")) != len(c.errs) {
			t.Errorf("%+v: %q is not one line per problem", c.cfg, err)
		}
		if c.cfg.HMACSecret != "" && strings.Contains(err.Error(), c.cfg.HMACSecret) {
			t.Errorf("error repeats the secret: %q", err)
		}
	}
}

func TestEnabled(t *testing.T) {
	for cfg, want := range map[*Config]bool{
		{}:                             false,
		{Audience: "a", Leeway: 1}:     false,
		{HMACSecret: testSecret}:       true,
		{PublicKey: "x"}:               true,
		{PublicKeyFile: "x"}:           true,
		{JWKSURL: "https://x.example"}: true,
	} {
		if cfg.Enabled() != want {
			t.Errorf("%+v: Enabled() = %v", *cfg, !want)
		}
	}
}

func TestPublicKeyFile(t *testing.T) {
	k := testKeys()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, []byte(publicPEM(t, k.ed)), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, Config{PublicKeyFile: path})
	if _, err := v.VerifyConnection(t.Context(), sign(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), nil)); err != nil {
		t.Fatal(err)
	}
}
