package node

import (
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// Observer learns of the node's events as they happen, for metrics. Its
// methods are called on hot paths, some with session locks held: they must
// be quick and must not call back into the node.
type Observer interface {
	// Published reports one publish through the engine: how long the
	// engine took, and its error, if any.
	Published(took time.Duration, err error)
	// Disconnected reports a session the server closes with d.
	Disconnected(transport string, d protocol.Disconnect)
	// AuthFailed reports a refused token or permission, by protocol code.
	AuthFailed(code uint32)
}

// Stats are the node's current counts and its counters since it started.
type Stats struct {
	// Connections counts sessions by transport name.
	Connections map[string]int
	// Channels counts channels with local subscribers; Subscriptions,
	// their local subscribers.
	Channels, Subscriptions int
	// Publications counts publications accepted by Publish and client
	// publishes; Deliveries, the copies the hub handed to local
	// subscribers (one publication to N subscribers counts N).
	Publications, Deliveries uint64
}

// Stats reads the node's counts. It walks the hub's channels, so it is
// meant for a metrics scrape, not a hot path.
func (n *Node) Stats() Stats {
	st := Stats{
		Connections:  n.sessions.byTransport(),
		Publications: n.published.Load(),
		Deliveries:   n.hub.delivered.Load(),
	}
	n.hub.channelCounts(func(_ string, subscribers int) {
		st.Channels++
		st.Subscriptions += subscribers
	})
	return st
}

// observer is the configured Observer, or one that ignores everything (a
// node built without New, in tests, has none either).
func (n *Node) observer() Observer {
	if n.cfg.Observer == nil {
		return nopObserver{}
	}
	return n.cfg.Observer
}

// nopObserver is the Observer of a node configured without one.
type nopObserver struct{}

func (nopObserver) Published(time.Duration, error)           {}
func (nopObserver) Disconnected(string, protocol.Disconnect) {}
func (nopObserver) AuthFailed(uint32)                        {}
