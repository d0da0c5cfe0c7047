package server

import (
	"context"
	"sync/atomic"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// tokenVerifier gives the node the JWT verifier in the node's own terms, so
// that the core never imports the JWT library. It uses the verifier in
// force, which reloads swap; none refuses every token.
type tokenVerifier struct {
	v *atomic.Pointer[auth.Verifier]
}

var _ node.TokenVerifier = tokenVerifier{}

// errNoKeys is what a server without token keys answers every token with.
var errNoKeys = protocol.ErrUnauthorized.With("this server accepts no tokens: no keys configured")

func (t tokenVerifier) VerifyConnection(ctx context.Context, token string) (node.Credentials, error) {
	v := t.v.Load()
	if v == nil {
		return node.Credentials{}, errNoKeys
	}
	c, err := v.VerifyConnection(ctx, token)
	if err != nil {
		return node.Credentials{}, err
	}
	return node.Credentials{UserID: c.UserID, Info: c.Info, ExpiresAt: c.ExpiresAt, Channels: c.Channels}, nil
}

func (t tokenVerifier) VerifySubscription(ctx context.Context, token string) (node.SubscriptionGrant, error) {
	v := t.v.Load()
	if v == nil {
		return node.SubscriptionGrant{}, errNoKeys
	}
	c, err := v.VerifySubscription(ctx, token)
	if err != nil {
		return node.SubscriptionGrant{}, err
	}
	return node.SubscriptionGrant{UserID: c.UserID, Channel: c.Channel}, nil
}
