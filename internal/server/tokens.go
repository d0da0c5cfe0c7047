package server

import (
	"context"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
)

// tokenVerifier gives the node the JWT verifier in the node's own terms, so
// that the core never imports the JWT library.
type tokenVerifier struct{ v *auth.Verifier }

var _ node.TokenVerifier = tokenVerifier{}

func (t tokenVerifier) VerifyConnection(ctx context.Context, token string) (node.Credentials, error) {
	c, err := t.v.VerifyConnection(ctx, token)
	if err != nil {
		return node.Credentials{}, err
	}
	return node.Credentials{UserID: c.UserID, Info: c.Info, ExpiresAt: c.ExpiresAt, Channels: c.Channels}, nil
}

func (t tokenVerifier) VerifySubscription(ctx context.Context, token string) (node.SubscriptionGrant, error) {
	c, err := t.v.VerifySubscription(ctx, token)
	if err != nil {
		return node.SubscriptionGrant{}, err
	}
	return node.SubscriptionGrant{UserID: c.UserID, Channel: c.Channel}, nil
}
