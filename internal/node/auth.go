package node

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// Credentials identify who a client is. An empty UserID is anonymous.
type Credentials struct {
	UserID string
	Info   json.RawMessage
	// ExpiresAt is when the connection token expires; zero means never. A
	// session is asked to refresh before it and closed at it.
	ExpiresAt time.Time
	// Channels are server-side subscriptions, made for the client when it
	// connects without it asking.
	Channels []string
	// Reserved lets Channels name channels of a ReservedNamespace. Only the
	// embedding server's own verifier sets it, never from a token's claims
	// or the user id; a session's token refreshes only with credentials
	// marked the same.
	Reserved bool
	// viaProxy: the connect proxy vouched for them, so the refresh proxy
	// renews them.
	viaProxy bool
	// meta is the request of a client yet to authenticate, for the connect
	// proxy; dropped once it has.
	meta *RequestMeta
}

// SubscriptionGrant is what a verified subscription token allows: UserID
// may subscribe to Channel.
type SubscriptionGrant struct {
	UserID  string
	Channel string
}

// TokenVerifier checks the tokens clients present. Both methods return a
// *protocol.Error: ErrTokenExpired for an expired token, ErrUnauthorized for
// any other bad token.
type TokenVerifier interface {
	VerifyConnection(ctx context.Context, token string) (Credentials, error)
	VerifySubscription(ctx context.Context, token string) (SubscriptionGrant, error)
}

// Authenticate turns the token a client presented into its credentials. An
// empty token is an anonymous client, refused unless Config.AllowAnonymous.
func (n *Node) Authenticate(ctx context.Context, token string) (Credentials, error) {
	cred, err := n.authenticate(ctx, token)
	if err != nil {
		n.observer().AuthFailed(protocol.AsError(err).Code)
	}
	return cred, err
}

func (n *Node) authenticate(ctx context.Context, token string) (Credentials, error) {
	if token == "" {
		if !n.cfg.AllowAnonymous {
			return Credentials{}, protocol.ErrUnauthorized.With("token required")
		}
		return Credentials{}, nil
	}
	if n.cfg.Verifier == nil {
		return Credentials{}, protocol.ErrUnauthorized.With("this server accepts no tokens: no keys configured")
	}
	cred, err := n.cfg.Verifier.VerifyConnection(ctx, token)
	if err != nil {
		return Credentials{}, err
	}
	if err := n.completeCredentials(&cred); err != nil {
		return Credentials{}, err
	}
	return cred, nil
}

// completeCredentials adds the personal channel to verified credentials
// and checks their server-side subscriptions.
func (n *Node) completeCredentials(cred *Credentials) error {
	// Reserved credentials are the server's own, no user's: they do not
	// get the personal channel of whoever shares their user id.
	if ch, ok := n.personalChannel(cred.UserID); ok && !cred.Reserved && !slices.Contains(cred.Channels, ch) {
		cred.Channels = append(cred.Channels, ch)
	}
	for _, ch := range cred.Channels {
		o, err := n.ns.resolve(ch)
		if err != nil {
			return protocol.ErrUnauthorized.With("channels claim: %v", protocol.AsError(err).Message)
		}
		if o.reserved && !cred.Reserved {
			return protocol.ErrUnauthorized.With("channels claim: namespace %q is reserved", o.Name)
		}
	}
	if most := n.limits().MaxChannelsPerSession; len(cred.Channels) > most {
		return protocol.ErrUnauthorized.With("channels claim lists %d channels, at most %d", len(cred.Channels), most)
	}
	return nil
}

// VerifySubscriptionTokens checks subscription tokens presented together
// with the channels they are for (an SSE stream's or a poll's) and indexes
// the grants by channel. A token for none of the channels is refused like a
// bad one: dropping it silently would report the channel as lacking a token.
func (n *Node) VerifySubscriptionTokens(ctx context.Context, tokens, channels []string) (map[string]SubscriptionGrant, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	if most := n.limits().MaxChannelsPerSession; len(tokens) > most {
		return nil, protocol.ErrLimitExceeded.With("%d subscription tokens, at most %d", len(tokens), most)
	}
	if n.cfg.Verifier == nil {
		return nil, protocol.ErrPermissionDenied.With("subscription token: this server accepts no tokens: no keys configured")
	}
	grants := make(map[string]SubscriptionGrant, len(tokens))
	for _, t := range tokens {
		g, err := n.cfg.Verifier.VerifySubscription(ctx, t)
		if err != nil {
			return nil, subscriptionTokenError(err)
		}
		if !slices.Contains(channels, g.Channel) {
			return nil, protocol.ErrPermissionDenied.With("subscription token is for another channel")
		}
		grants[g.Channel] = g
	}
	return grants, nil
}

// subscriptionTokenError turns a subscription token's rejection into a
// permission error. On SSE and polling a whole request fails for it, and a
// 101 or 109 there would tell the client its connection token is bad, which
// it would then stop using or replace for nothing.
func subscriptionTokenError(err error) error {
	return protocol.ErrPermissionDenied.With("subscription token: %s", protocol.AsError(err).Message)
}

// action is what a client wants to do with a channel.
type action uint8

const (
	actSubscribe action = iota
	actPublish
	actHistory
	actPresence
)

func (a action) String() string {
	return [...]string{"subscribe to", "publish to", "read history of", "read presence of"}[a]
}

// authorization is what a client brings to one action besides its
// credentials: proof of access to a private channel.
type authorization struct {
	// grant is a verified subscription token for the channel, if any.
	grant *SubscriptionGrant
	// subscribed is set when the client's session holds a live subscription
	// to the channel, which it could only have obtained by passing the
	// subscribe check.
	subscribed bool
}

// authorize decides whether cred may do act on channel in namespace ns,
// and reports a refusal to the observer; permit decides.
//
// A user-limited channel names its users: only they may subscribe, with no
// token needed, and the namespace's other rules still apply to the rest. A
// private namespace needs a subscription token to subscribe, and an active
// subscription for publishing, history and presence. Elsewhere the
// namespace's access rule decides.
func (n *Node) authorize(cred Credentials, ns NamespaceOptions, channel string, act action, az authorization) error {
	err := n.permit(cred, ns, channel, act, az)
	if err != nil {
		n.observer().AuthFailed(protocol.AsError(err).Code)
	}
	return err
}

func (n *Node) permit(cred Credentials, ns NamespaceOptions, channel string, act action, az authorization) error {
	deny := func(why string) error {
		return protocol.ErrPermissionDenied.With("%s %q: %s", act, truncate(channel, 64), why)
	}
	if ns.reserved {
		return deny("namespace " + quoteNamespace(ns.Name) + " is reserved")
	}
	if users, limited := channelUsers(ns, channel); limited {
		if cred.UserID == "" || !slices.Contains(users, cred.UserID) {
			return deny("the channel is limited to the users it names")
		}
		if act == actSubscribe {
			return nil
		}
	}
	if ns.Private {
		switch {
		case act == actSubscribe && az.grant == nil:
			return deny("private namespace: a subscription token is required")
		case act == actSubscribe && (az.grant.Channel != channel || az.grant.UserID != cred.UserID):
			return deny("the subscription token is for another channel or user")
		case act == actSubscribe:
			return nil
		case !az.subscribed:
			return deny("private namespace: subscribe first")
		}
	}
	if !ns.access(act).Allows(cred) {
		return deny("not allowed by namespace " + quoteNamespace(ns.Name))
	}
	return nil
}

// access is the namespace's rule for act.
func (ns *NamespaceOptions) access(act action) Access {
	switch act {
	case actSubscribe:
		return ns.Subscribe
	case actPublish:
		return ns.Publish
	case actHistory:
		return ns.HistoryAccess
	default:
		return ns.PresenceAccess
	}
}

func quoteNamespace(name string) string {
	if name == "" {
		return "(default)"
	}
	return `"` + name + `"`
}

// UserLimitSeparator starts the user list of a user-limited channel:
// "notifications#alice" or "chat:dm#alice,bob" may be subscribed to only by
// the users listed after it, separated by commas.
const UserLimitSeparator = "#"

// channelUsers returns the users a user-limited channel is limited to. A
// channel is user-limited when its name has a '#' (the users follow the
// last one), or when its namespace is UserLimited (the users are the whole
// part after the namespace's ':').
func channelUsers(ns NamespaceOptions, channel string) ([]string, bool) {
	if i := strings.LastIndex(channel, UserLimitSeparator); i >= 0 {
		return strings.Split(channel[i+1:], ","), true
	}
	if ns.UserLimited {
		_, rest, _ := strings.Cut(channel, ":")
		return strings.Split(rest, ","), true
	}
	return nil, false
}

type credentialsKey struct{}

// WithCredentials returns a copy of ctx carrying the credentials a request
// was authenticated with, for the transport that serves it.
func WithCredentials(ctx context.Context, cred Credentials) context.Context {
	return context.WithValue(ctx, credentialsKey{}, cred)
}

// CredentialsFrom returns the credentials WithCredentials attached to ctx.
// Without them, the zero credentials it returns carry the request's
// WithRequestMeta, for a session's connect proxy.
func CredentialsFrom(ctx context.Context) (Credentials, bool) {
	cred, ok := ctx.Value(credentialsKey{}).(Credentials)
	if !ok {
		cred.meta = requestMetaFrom(ctx)
	}
	return cred, ok
}

// RequestCredentials returns the credentials WithCredentials attached to
// ctx. Without them the connect proxy, if any, says who the client is;
// otherwise it is anonymous, if Config.AllowAnonymous lets it in at all.
func (n *Node) RequestCredentials(ctx context.Context) (Credentials, error) {
	cred, ok := CredentialsFrom(ctx)
	if ok {
		return cred, nil
	}
	if n.cfg.Proxy.Connect != nil {
		cred, _, err := n.proxyConnect(ctx, nil, cred.meta, nil)
		return cred, err
	}
	return n.Authenticate(ctx, "")
}

// ProxiesConnect reports whether clients without a token are authenticated
// by the connect proxy.
func (n *Node) ProxiesConnect() bool { return n.cfg.Proxy.Connect != nil }
