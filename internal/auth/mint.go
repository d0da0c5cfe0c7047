package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// MintOptions describe a token for Mint. The zero value of each field
// leaves its claim out.
type MintOptions struct {
	// Secret is the HMAC secret, at least 32 bytes: the server's
	// auth.hmac_secret.
	Secret []byte
	// Algorithm is HS256 (when empty), HS384 or HS512.
	Algorithm string
	UserID    string
	// TTL sets exp that long after iat; 0 mints a token that never expires.
	TTL time.Duration
	// Channels are the server-side subscriptions of a connection token.
	Channels []string
	// Channel, when set, makes a subscription token for this channel.
	Channel          string
	Info             json.RawMessage
	Audience, Issuer string
	// Now gives iat; nil means time.Now.
	Now func() time.Time
}

// Mint returns a signed token as o describes, one a Verifier configured
// with the same secret accepts. It refuses options giving a token the
// Verifier would refuse.
func Mint(o MintOptions) (string, error) {
	var method jwt.SigningMethod
	switch o.Algorithm {
	case "", "HS256":
		method = jwt.SigningMethodHS256
	case "HS384":
		method = jwt.SigningMethodHS384
	case "HS512":
		method = jwt.SigningMethodHS512
	default:
		return "", fmt.Errorf("algorithm %q is not HS256, HS384 or HS512", o.Algorithm)
	}
	if len(o.Secret) < minHMACSecret {
		return "", fmt.Errorf("the secret is %d bytes, at least %d are needed", len(o.Secret), minHMACSecret)
	}
	if o.TTL < 0 {
		return "", fmt.Errorf("negative TTL %v", o.TTL)
	}
	if o.Channel != "" && len(o.Channels) > 0 {
		return "", errors.New("a token either connects with channels or subscribes to one channel, not both")
	}
	if o.Channel != "" && !protocol.ValidChannel(o.Channel) {
		return "", fmt.Errorf("channel %q is not a valid channel name", truncate(o.Channel))
	}
	if err := checkChannels(o.Channels); err != nil {
		return "", fmt.Errorf("channels: %v", err)
	}
	info, err := compactInfo(o.Info)
	if err != nil {
		return "", fmt.Errorf("info: %v", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	iat := now()
	c := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: o.UserID, Issuer: o.Issuer, IssuedAt: jwt.NewNumericDate(iat)},
		Info:             info,
		Channels:         o.Channels,
	}
	if o.Audience != "" {
		c.Audience = jwt.ClaimStrings{o.Audience}
	}
	if o.TTL > 0 {
		c.ExpiresAt = jwt.NewNumericDate(iat.Add(o.TTL))
	}
	if o.Channel != "" {
		c.Channel, _ = json.Marshal(o.Channel)
	}
	return jwt.NewWithClaims(method, c).SignedString(o.Secret)
}
