package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/protocol"
)

// Claim limits. Info is repeated in presence and join events, channels are
// subscribed on every connect: both are bounded so that one token cannot
// make every connection expensive.
const (
	maxInfoBytes = 4096
	maxChannels  = 128
)

// ConnectionClaims is what a verified connection token says about a client.
type ConnectionClaims struct {
	// UserID is "sub"; empty means anonymous.
	UserID string
	// ExpiresAt is "exp"; zero when the token has none.
	ExpiresAt time.Time
	// Info is the "info" claim, compacted; nil when absent or null.
	Info json.RawMessage
	// Channels is the "channels" claim: subscriptions the server makes for
	// the client when it connects.
	Channels []string
}

// SubscriptionClaims is what a verified subscription token grants: UserID
// may subscribe to Channel. The caller checks that UserID is the
// subscribing client's user, which it may be even when empty (anonymous).
type SubscriptionClaims struct {
	UserID    string
	Channel   string
	ExpiresAt time.Time
	Info      json.RawMessage
}

// tokenClaims is the payload of both kinds of token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Info     json.RawMessage `json:"info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	// Channel stays raw so that its presence, whatever its value, marks a
	// subscription token.
	Channel json.RawMessage `json:"channel,omitempty"`
}

// connection returns c as a connection token's claims.
func (c *tokenClaims) connection() (ConnectionClaims, error) {
	if c.Channel != nil {
		return ConnectionClaims{}, protocol.ErrUnauthorized.With("a subscription token cannot be used to connect")
	}
	if err := checkChannels(c.Channels); err != nil {
		return ConnectionClaims{}, protocol.ErrUnauthorized.With("channels claim: %v", err)
	}
	info, err := compactInfo(c.Info)
	if err != nil {
		return ConnectionClaims{}, protocol.ErrUnauthorized.With("info claim: %v", err)
	}
	return ConnectionClaims{UserID: c.Subject, ExpiresAt: c.expiresAt(), Info: info, Channels: c.Channels}, nil
}

// subscription returns c as a subscription token's claims.
func (c *tokenClaims) subscription() (SubscriptionClaims, error) {
	if c.Channel == nil {
		return SubscriptionClaims{}, protocol.ErrUnauthorized.With("not a subscription token: no channel claim")
	}
	// A token naming one channel and listing others is ambiguous, whatever
	// its issuer meant.
	if c.Channels != nil {
		return SubscriptionClaims{}, protocol.ErrUnauthorized.With("a subscription token cannot carry a channels claim")
	}
	var channel string
	if err := json.Unmarshal(c.Channel, &channel); err != nil {
		return SubscriptionClaims{}, protocol.ErrUnauthorized.With("channel claim is not a string")
	}
	if !protocol.ValidChannel(channel) {
		return SubscriptionClaims{}, protocol.ErrUnauthorized.With("channel claim: %q is not a valid channel name", truncate(channel))
	}
	info, err := compactInfo(c.Info)
	if err != nil {
		return SubscriptionClaims{}, protocol.ErrUnauthorized.With("info claim: %v", err)
	}
	return SubscriptionClaims{UserID: c.Subject, Channel: channel, ExpiresAt: c.expiresAt(), Info: info}, nil
}

func (c *tokenClaims) expiresAt() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// checkChannels checks a "channels" claim.
func checkChannels(channels []string) error {
	if len(channels) > maxChannels {
		return fmt.Errorf("%d channels, at most %d", len(channels), maxChannels)
	}
	for i, ch := range channels {
		if !protocol.ValidChannel(ch) {
			return fmt.Errorf("channels[%d] %q is not a valid channel name", i, truncate(ch))
		}
	}
	return nil
}

// compactInfo returns an "info" claim without insignificant space, or nil
// for none or JSON null.
func compactInfo(info json.RawMessage) (json.RawMessage, error) {
	if len(info) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, info); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if b.String() == "null" {
		return nil, nil
	}
	if b.Len() > maxInfoBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", b.Len(), maxInfoBytes)
	}
	return b.Bytes(), nil
}

// truncate shortens a name quoted in an error, so a message stays short
// whatever the name.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
