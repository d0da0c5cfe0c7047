package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// AdminAudience is the "aud" of admin session tokens: it keeps them apart
// from connection tokens even where the secrets were made equal by mistake.
const AdminAudience = "herald-admin"

// adminSubject is the "sub" of admin session tokens, and so the user id of
// the admin UI's connection.
const adminSubject = "admin"

// MinAdminSecret is the shortest admin.secret accepted, as for HS256
// connection tokens (RFC 7518 §3.2).
const MinAdminSecret = 32

// adminMethod is the only algorithm admin session tokens are signed and
// accepted with: pinning it keeps "alg" in the token from choosing.
var adminMethod = jwt.SigningMethodHS256

// ErrNotAdminToken is AdminTokens.Verify's answer for a token that was not
// signed with the admin secret at all (as opposed to an admin token that
// expired), so callers can try it as another kind of token.
var ErrNotAdminToken = errors.New("not an admin session token")

// DefaultAdminSessionTTL is how long an admin session token lasts when
// NewAdminTokens is given no TTL.
const DefaultAdminSessionTTL = time.Hour

// MaxAdminSession is how long renewals may keep one login's session going:
// past it, even a valid token is not renewed, and the UI asks for the
// password again. A stolen token thus cannot be kept alive for ever.
const MaxAdminSession = 12 * time.Hour

// adminClaims are an admin session token's claims: the registered ones and
// the time of the login the session started with (OpenID Connect's
// "auth_time"), which renewals carry over.
type adminClaims struct {
	jwt.RegisteredClaims
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
}

// AdminTokens mints and verifies admin session tokens. The server needs
// them before the admin API exists: its connection token verifier takes
// admin sessions too, so that the admin UI can connect.
type AdminTokens struct {
	// secret changes by Rekey while tokens are minted and verified.
	secret atomic.Pointer[[]byte]
	ttl    time.Duration
}

// NewAdminTokens returns the session tokens signed with secret, at least
// MinAdminSecret bytes, lasting ttl (zero: DefaultAdminSessionTTL).
func NewAdminTokens(secret []byte, ttl time.Duration) (*AdminTokens, error) {
	if ttl <= 0 {
		ttl = DefaultAdminSessionTTL
	}
	a := &AdminTokens{ttl: ttl}
	if err := a.Rekey(secret); err != nil {
		return nil, err
	}
	return a, nil
}

// Rekey signs and verifies tokens with secret from now on, which ends every
// session signed with the one before.
func (a *AdminTokens) Rekey(secret []byte) error {
	if len(secret) < MinAdminSecret {
		return fmt.Errorf("admin: the secret is %d bytes, at least %d are needed", len(secret), MinAdminSecret)
	}
	secret = slices.Clone(secret)
	a.secret.Store(&secret)
	return nil
}

// mint signs a token valid from now for the session that logged in at
// login.
func (a *AdminTokens) mint(now, login time.Time) (string, error) {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	claims := adminClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   adminSubject,
			Audience:  jwt.ClaimStrings{AdminAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
			ID:        hex.EncodeToString(id),
		},
		AuthTime: jwt.NewNumericDate(login),
	}
	return jwt.NewWithClaims(adminMethod, claims).SignedString(*a.secret.Load())
}

// AdminSession is what a valid admin session token says.
type AdminSession struct {
	// Expires is when the token stops being valid; Login, when the session
	// it belongs to logged in.
	Expires, Login time.Time
}

// Verify returns what a valid admin session token says. A token not
// signed with the secret (or not with HS256) fails with ErrNotAdminToken
// wrapped; a signed one that is expired with protocol.ErrTokenExpired, and
// one whose claims are wrong otherwise with protocol.ErrUnauthorized.
func (a *AdminTokens) Verify(token string) (AdminSession, error) {
	var claims adminClaims
	secret := *a.secret.Load()
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{adminMethod.Alg()}),
		jwt.WithAudience(AdminAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return AdminSession{}, fmt.Errorf("%w: %v", ErrNotAdminToken, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return AdminSession{}, protocol.ErrTokenExpired.With("admin session expired: log in again")
	default:
		return AdminSession{}, protocol.ErrUnauthorized.With("admin session token: %v", err)
	}
	if claims.Subject != adminSubject {
		return AdminSession{}, protocol.ErrUnauthorized.With("admin session token: wrong subject")
	}
	if claims.AuthTime == nil {
		return AdminSession{}, protocol.ErrUnauthorized.With("admin session token: no auth_time")
	}
	return AdminSession{Expires: claims.ExpiresAt.Time, Login: claims.AuthTime.Time}, nil
}
