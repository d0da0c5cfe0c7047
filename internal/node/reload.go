package node

import (
	"fmt"
	"sync/atomic"
)

// Limits are the bounds Reload may change while the node runs. Each applies
// from the next request it bounds: a session keeps the command rate it
// connected with, and subscriptions made under the old limits stay.
type Limits struct {
	// See the Config fields of the same names.
	MaxChannelsPerSession    int
	MaxPublicationSize       int
	MaxRecoveredPublications int
	MaxHistoryLimit          int
	MaxConnectionsPerUser    int
	CommandRate              float64
	CommandBurst             int
}

// Live is the part of a node's configuration that can change without a
// restart (Node.Reload).
type Live struct {
	Namespaces []NamespaceOptions
	Limits     Limits
}

// liveConfig is one snapshot of Live, checked and ready to use. Hot paths
// load it with one atomic read instead of taking a lock that every publish
// and subscribe would contend on.
type liveConfig struct {
	ns     namespaces
	limits Limits
}

// liveRef holds the snapshot in force. It is the Node's ns field, so that
// n.ns.resolve reads the current namespaces wherever it is called.
type liveRef struct{ p atomic.Pointer[liveConfig] }

// resolve validates the channel name and finds its namespace in the current
// snapshot.
func (l *liveRef) resolve(channel string) (NamespaceOptions, error) {
	return l.p.Load().ns.resolve(channel)
}

// limits returns the limits in force.
func (n *Node) limits() *Limits { return &n.ns.p.Load().limits }

// Reload replaces the namespaces and limits. Existing subscriptions stay
// whatever their namespace becomes; new subscribes, publishes and history
// reads follow the new rules. An invalid l changes nothing: every option is
// checked before anything is swapped.
func (n *Node) Reload(l Live) error {
	c, err := n.newLiveConfig(l)
	if err != nil {
		return fmt.Errorf("node: reload: %w", err)
	}
	n.ns.p.Store(c)
	return nil
}

// newLiveConfig checks l and fills zero limits with their defaults, as New
// does for Config.
func (n *Node) newLiveConfig(l Live) (*liveConfig, error) {
	ns, err := newNamespaces(l.Namespaces, n.cfg.Dev)
	if err != nil {
		return nil, err
	}
	if err := checkProxies(n.cfg.Proxy, l.Namespaces); err != nil {
		return nil, err
	}
	if p := n.cfg.PersonalNamespace; p != "" {
		if _, err := ns.resolve(p + ":#user"); err != nil {
			return nil, fmt.Errorf("personal namespace %q is not configured", p)
		}
	}
	lim := l.Limits
	if lim.MaxConnectionsPerUser < 0 {
		return nil, fmt.Errorf("max connections per user %d is negative", lim.MaxConnectionsPerUser)
	}
	d := Config{
		MaxChannelsPerSession:    lim.MaxChannelsPerSession,
		MaxPublicationSize:       lim.MaxPublicationSize,
		MaxRecoveredPublications: lim.MaxRecoveredPublications,
		MaxHistoryLimit:          lim.MaxHistoryLimit,
		MaxConnectionsPerUser:    lim.MaxConnectionsPerUser,
		CommandRate:              lim.CommandRate,
		CommandBurst:             lim.CommandBurst,
	}
	d.setDefaults()
	return &liveConfig{ns: ns, limits: liveOf(&d).Limits}, nil
}

// liveOf is the Live part of a Config.
func liveOf(c *Config) Live {
	return Live{Namespaces: c.Namespaces, Limits: Limits{
		MaxChannelsPerSession:    c.MaxChannelsPerSession,
		MaxPublicationSize:       c.MaxPublicationSize,
		MaxRecoveredPublications: c.MaxRecoveredPublications,
		MaxHistoryLimit:          c.MaxHistoryLimit,
		MaxConnectionsPerUser:    c.MaxConnectionsPerUser,
		CommandRate:              c.CommandRate,
		CommandBurst:             c.CommandBurst,
	}}
}
