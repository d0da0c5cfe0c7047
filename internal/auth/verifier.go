package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// maxTokenBytes bounds a token before anything decodes it. Real tokens,
// even with the largest info and channels claims, stay well under it.
const maxTokenBytes = 8192

// Verifier checks connection and subscription tokens. It is safe for
// concurrent use. The zero Verifier refuses every token.
type Verifier struct {
	keys     keySet
	methods  []string
	parser   *jwt.Parser
	audience string
	issuer   string
}

// New returns a Verifier for cfg, after validating it. With static keys it
// does no network I/O. With a JWKS URL it fetches the keys, waiting at most
// 10 seconds, and keeps them fresh until ctx is done; an endpoint that
// cannot be reached is no error: tokens are refused until keys arrive. A
// Config that is not Enabled gives a Verifier refusing every token.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	return newVerifier(ctx, cfg, defaultUnknownKIDEvery)
}

// newVerifier is New with the unknown-kid refresh interval as a parameter,
// so that tests need not wait for it.
func newVerifier(ctx context.Context, cfg Config, unknownKIDEvery time.Duration) (*Verifier, error) {
	keys, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if cfg.JWKSURL != "" {
		if keys.jwks, err = fetchJWKS(ctx, cfg, unknownKIDEvery); err != nil {
			return nil, fmt.Errorf("auth.jwks_url: %w", err)
		}
	}
	v := &Verifier{keys: keys, methods: keys.methods(), audience: cfg.Audience, issuer: cfg.Issuer}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		// One token, one spelling: non-canonical base64 is refused.
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// VerifyConnection checks a connection token and returns its claims. The
// error is a *protocol.Error: ErrTokenExpired for a token that is past its
// exp and good otherwise, ErrUnauthorized for any other fault.
func (v *Verifier) VerifyConnection(ctx context.Context, token string) (ConnectionClaims, error) {
	c, expired, err := v.verify(ctx, token)
	if err != nil {
		return ConnectionClaims{}, err
	}
	cc, err := c.connection()
	if err != nil {
		return ConnectionClaims{}, err
	}
	if expired {
		return ConnectionClaims{}, expiredError(c)
	}
	return cc, nil
}

// VerifySubscription checks a subscription token and returns its claims,
// failing as VerifyConnection does.
func (v *Verifier) VerifySubscription(ctx context.Context, token string) (SubscriptionClaims, error) {
	c, expired, err := v.verify(ctx, token)
	if err != nil {
		return SubscriptionClaims{}, err
	}
	sc, err := c.subscription()
	if err != nil {
		return SubscriptionClaims{}, err
	}
	if expired {
		return SubscriptionClaims{}, expiredError(c)
	}
	return sc, nil
}

// verify checks token's size, signature and the claims both kinds share.
// Expiry is reported apart, for the caller to act on after its own checks:
// a token wrong in any other way must be unauthorized rather than expired,
// since a fresh copy of it would be refused too.
func (v *Verifier) verify(ctx context.Context, token string) (c *tokenClaims, expired bool, err error) {
	switch {
	case len(v.methods) == 0:
		return nil, false, protocol.ErrUnauthorized.With("no token keys configured")
	case token == "":
		return nil, false, protocol.ErrUnauthorized.With("empty token")
	case len(token) > maxTokenBytes:
		return nil, false, protocol.ErrUnauthorized.With("token longer than %d bytes", maxTokenBytes)
	}
	c = new(tokenClaims)
	t, err := v.parser.ParseWithClaims(token, c, v.keys.keyFunc(ctx))
	if err != nil && !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		return nil, false, v.rejection(t, err)
	}
	// The parser checks claims only once the signature holds, and of the
	// claims only exp, nbf and iat.
	expired = errors.Is(err, jwt.ErrTokenExpired)
	switch {
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, false, protocol.ErrUnauthorized.With("token not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, false, protocol.ErrUnauthorized.With("token issued in the future")
	case err != nil && !expired:
		return nil, false, protocol.ErrUnauthorized.With("invalid time claims")
	case v.audience != "" && !slices.Contains(c.Audience, v.audience):
		return nil, false, protocol.ErrUnauthorized.With("wrong audience")
	case v.issuer != "" && c.Issuer != v.issuer:
		return nil, false, protocol.ErrUnauthorized.With("wrong issuer")
	}
	return c, expired, nil
}

// rejection says why the parser refused token t before checking its claims.
func (v *Verifier) rejection(t *jwt.Token, err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe): // from keyFunc
		return pe
	case errors.Is(err, jwt.ErrTokenMalformed):
		return protocol.ErrUnauthorized.With("malformed token")
	case t == nil || t.Method == nil:
		return protocol.ErrUnauthorized.With("unknown or missing algorithm")
	case !slices.Contains(v.methods, t.Method.Alg()):
		return protocol.ErrUnauthorized.With("algorithm %s not accepted", t.Method.Alg())
	}
	return protocol.ErrUnauthorized.With("invalid signature")
}

func expiredError(c *tokenClaims) *protocol.Error {
	return protocol.ErrTokenExpired.With("expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
}
