package auth

import (
	"context"
	"crypto"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/heraldrt/herald/internal/protocol"
)

const (
	// defaultJWKSRefresh is Config.JWKSRefresh's default.
	defaultJWKSRefresh = time.Hour
	// defaultUnknownKIDEvery bounds the refreshes caused by tokens naming
	// an unknown "kid": often enough to pick up a rotated key, or the keys
	// of an endpoint that was down, within half a minute; rarely enough
	// that tokens with made-up kids cannot turn Herald into a flood against
	// the endpoint.
	defaultUnknownKIDEvery = 30 * time.Second
	// jwksTimeout bounds one fetch, and with it how long New, or a token
	// with an unknown kid, can wait on a slow endpoint.
	jwksTimeout = 10 * time.Second
)

// fetchJWKS returns a key store filled from cfg.JWKSURL, refreshed in the
// background until ctx is done, and when a token names an unknown kid, at
// most once every unknownKIDEvery. An endpoint that cannot be reached now
// is no error: its tokens are refused until a refresh gets the keys.
func fetchJWKS(ctx context.Context, cfg Config, unknownKIDEvery time.Duration) (jwkset.Storage, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	refresh := cfg.JWKSRefresh
	if refresh == 0 {
		refresh = defaultJWKSRefresh
	}
	noErrorOnFirstFetch := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		// Keys are fetched rarely: an idle keep-alive connection would only
		// hold a goroutine and a socket until the next refresh.
		Client:                    &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}},
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
		// The wait also bounds the fetch itself, which runs in the same
		// context; a token arriving when no refresh is allowed soon is
		// refused at once rather than held.
		RateLimitWaitMax: jwksTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				logger.Warn("auth: fetching the JWKS failed; tokens signed with keys not yet fetched are refused", "url", u, "error", err)
			}
		},
		RefreshInterval:   refresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDEvery), 1),
	})
	if err != nil {
		return nil, err
	}
	return kf.Storage(), nil
}

// jwksKey returns the key of store that verifies a token signed with alg
// whose header "kid" is kid. A token without a kid may be signed by any key
// of the set, so it gets every key that fits.
func jwksKey(ctx context.Context, store jwkset.Storage, kid any, alg string) (any, error) {
	if kid != nil {
		s, ok := kid.(string)
		if !ok {
			return nil, protocol.ErrUnauthorized.With("kid is not a string")
		}
		j, err := store.KeyRead(ctx, s)
		if err != nil {
			return nil, protocol.ErrUnauthorized.With("unknown signing key")
		}
		if key, ok := jwkFor(j, alg); ok {
			return key, nil
		}
		return nil, noKeyFor(alg)
	}
	all, err := store.KeyReadAll(ctx)
	if err != nil {
		return nil, protocol.ErrUnauthorized.With("unknown signing key")
	}
	var set jwt.VerificationKeySet
	for _, j := range all {
		if key, ok := jwkFor(j, alg); ok {
			set.Keys = append(set.Keys, key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, noKeyFor(alg)
	}
	return set, nil
}

// jwkFor returns the public key of j if j may verify a token signed with
// alg: j is meant for signatures (by its "use" and "key_ops", when given),
// names alg or no algorithm, and is a key of alg's family. An "oct" key is
// of no family.
func jwkFor(j jwkset.JWK, alg string) (crypto.PublicKey, bool) {
	m := j.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, false
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return nil, false
	}
	if m.ALG != "" && string(m.ALG) != alg {
		return nil, false
	}
	key := j.Key()
	// A set may publish private keys too; only their public half is used.
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public()
	}
	return key, usable(key, alg)
}
