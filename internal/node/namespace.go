package node

import (
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// Access says who may perform an action in a namespace.
type Access string

// Access levels. The zero value denies, so a namespace option left unset is closed.
const (
	AccessNobody        Access = "nobody"
	AccessAuthenticated Access = "authenticated"
	AccessAnyone        Access = "anyone"
)

// Allows reports whether a client with the given credentials passes.
func (a Access) Allows(c Credentials) bool {
	switch a {
	case AccessAnyone:
		return true
	case AccessAuthenticated:
		return c.UserID != ""
	default:
		return false
	}
}

// Validate rejects unknown access words so a typo in a config file fails
// loudly instead of silently denying.
func (a Access) Validate() error {
	switch a {
	case "", AccessNobody, AccessAuthenticated, AccessAnyone:
		return nil
	}
	return fmt.Errorf("access %q: want nobody, authenticated or anyone", string(a))
}

// NamespaceOptions configure every channel whose name starts with "Name:".
// The namespace with an empty name holds channels without a colon.
type NamespaceOptions struct {
	Name string `koanf:"name" json:"name"`
	// HistorySize and HistoryTTL bound each channel's stored history. Zero
	// size disables history: publications are delivered live only and
	// resuming is never possible.
	HistorySize int           `koanf:"history_size" json:"history_size"`
	HistoryTTL  time.Duration `koanf:"history_ttl" json:"history_ttl"`
	// Presence keeps the set of subscribed clients; JoinLeave also sends join
	// and leave events to subscribers.
	Presence  bool `koanf:"presence" json:"presence"`
	JoinLeave bool `koanf:"join_leave" json:"join_leave"`
	// Who may subscribe, publish as a client, read history and read presence.
	Subscribe      Access `koanf:"subscribe" json:"subscribe"`
	Publish        Access `koanf:"publish" json:"publish"`
	HistoryAccess  Access `koanf:"history" json:"history"`
	PresenceAccess Access `koanf:"presence_access" json:"presence_access"`
	// Private namespaces need a subscription token (a JWT naming the user
	// and the channel) to subscribe, and an active subscription to publish
	// or read history and presence.
	Private bool `koanf:"private" json:"private"`
	// UserLimited makes every channel of the namespace a list of the users
	// who may subscribe to it: "dm:alice,bob". Any channel whose name has a
	// '#' is user-limited this way without this option: "notifications#alice".
	UserLimited bool `koanf:"user_limited" json:"user_limited"`
	// WebRTC makes every channel of the namespace a room: its members (its
	// presence) may send signals to one another. It needs Presence.
	WebRTC bool `koanf:"webrtc" json:"webrtc"`
	// ProxySubscribe and ProxyPublish ask the backend (the subscribe and
	// publish proxies) whether a client may subscribe or publish, in place
	// of the rules above; a subscription token still suffices to subscribe.
	ProxySubscribe bool `koanf:"proxy_subscribe" json:"proxy_subscribe"`
	ProxyPublish   bool `koanf:"proxy_publish" json:"proxy_publish"`
	// reserved: see ReservedNamespace.
	reserved bool
}

// ReservedNamespace is a namespace for the embedding server's own use (the
// admin UI's): every client action in it is refused, user-limited channels
// included, and only credentials marked Reserved may name its channels as
// server-side subscriptions. It has no history or presence.
func ReservedNamespace(name string) NamespaceOptions {
	return NamespaceOptions{Name: name, reserved: true}
}

// Validate checks the options for values that cannot work.
func (o NamespaceOptions) Validate() error {
	if o.Name != "" && !protocol.ValidChannel(o.Name) {
		return fmt.Errorf("namespace %q: invalid name", o.Name)
	}
	if o.HistorySize < 0 || o.HistoryTTL < 0 {
		return fmt.Errorf("namespace %q: history_size and history_ttl must not be negative", o.Name)
	}
	if o.WebRTC && !o.Presence {
		return fmt.Errorf("namespace %q: webrtc needs presence, which says who is in a room", o.Name)
	}
	if o.HistorySize > 0 && o.HistoryTTL == 0 {
		return fmt.Errorf("namespace %q: history_size needs a history_ttl so history is bounded in age", o.Name)
	}
	for _, a := range []Access{o.Subscribe, o.Publish, o.HistoryAccess, o.PresenceAccess} {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("namespace %q: %w", o.Name, err)
		}
	}
	return nil
}

// DevNamespace is the default namespace of --dev mode: everything open to
// anyone, with history and presence, for local development and the demo.
func DevNamespace(name string) NamespaceOptions {
	return NamespaceOptions{
		Name:           name,
		HistorySize:    1000,
		HistoryTTL:     24 * time.Hour,
		Presence:       true,
		JoinLeave:      true,
		Subscribe:      AccessAnyone,
		Publish:        AccessAnyone,
		HistoryAccess:  AccessAnyone,
		PresenceAccess: AccessAnyone,
		WebRTC:         true,
	}
}

// namespaces resolves a channel to its options.
type namespaces struct {
	byName map[string]NamespaceOptions
	// dev opens namespaces missing from byName with DevNamespace options.
	dev bool
}

func newNamespaces(list []NamespaceOptions, dev bool) (namespaces, error) {
	ns := namespaces{byName: make(map[string]NamespaceOptions, len(list)), dev: dev}
	for _, o := range list {
		if err := o.Validate(); err != nil {
			return ns, err
		}
		if _, dup := ns.byName[o.Name]; dup {
			return ns, fmt.Errorf("namespace %q defined twice", o.Name)
		}
		ns.byName[o.Name] = o
	}
	return ns, nil
}

// resolve validates the channel name and finds its namespace.
func (ns namespaces) resolve(channel string) (NamespaceOptions, error) {
	if !protocol.ValidChannel(channel) {
		return NamespaceOptions{}, protocol.ErrInvalidChannel.With("%q", truncate(channel, 64))
	}
	o, ok := ns.byName[protocol.Namespace(channel)]
	if !ok && ns.dev {
		return DevNamespace(protocol.Namespace(channel)), nil
	}
	if !ok {
		return NamespaceOptions{}, protocol.ErrUnknownChannel.With("no namespace %q", protocol.Namespace(channel))
	}
	return o, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
