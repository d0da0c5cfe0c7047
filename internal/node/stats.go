package node

import (
	"context"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// Observer learns of the node's events as they happen, for metrics. Its
// methods are called on hot paths, some with session or hub locks held:
// they must be quick and must not call back into the node.
type Observer interface {
	// EngineCall reports one call to the engine: its operation (see
	// observedEngine), how long it took, and its error, if any.
	EngineCall(op string, took time.Duration, err error)
	// FannedOut reports the hub handing one publication to every local
	// subscriber of its channel: how long that took in all.
	FannedOut(took time.Duration)
	// Flushed reports one write of a session's queue to its connection:
	// the frames written and, when live publications were among them, the
	// time since the engine accepted the oldest (negative when none was).
	Flushed(transport string, frames int, latency time.Duration)
	// Received reports one inbound frame from a client.
	Received(transport string)
	// Dropped reports queued frames discarded undelivered, and why (see
	// the Drop constants).
	Dropped(transport, reason string, frames int)
	// Disconnected reports a session the server closes with d.
	Disconnected(transport string, d protocol.Disconnect)
	// AuthFailed reports a refused token or permission, by protocol code.
	AuthFailed(code uint32)
}

// Reasons for Observer.Dropped.
const (
	// DropSlowConsumer: the queue of a session disconnected as a slow
	// consumer, discarded because the client recovers from history anyway.
	DropSlowConsumer = "slow_consumer"
	// DropSuperseded: a latest-only publication (protocol.DeliveryLatest)
	// a transport skipped because a newer one of its channel was waiting.
	DropSuperseded = "superseded"
)

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

// HistorySample is the history one channel with local subscribers keeps.
type HistorySample struct {
	Namespace string
	// Publications counts the publications the channel's history holds.
	Publications int
}

// SampleHistory reads the history length of at most limit channels with
// local subscribers, in namespaces that keep history, starting from a
// random hub shard. Each costs one engine read of one publication, the
// oldest kept: history offsets are contiguous, so the channel's top offset
// minus the oldest one's, plus one, counts them. It stops early when ctx
// ends, and its reads are not reported to the Observer, so a scrape does
// not show up as client traffic.
func (n *Node) SampleHistory(ctx context.Context, limit int) []HistorySample {
	if limit <= 0 {
		return nil
	}
	type pick struct {
		channel, namespace string
	}
	var picks []pick
	n.hub.someChannels(func(channel string) bool {
		if ns, err := n.ns.resolve(channel); err == nil && ns.HistorySize > 0 {
			picks = append(picks, pick{channel, ns.Name})
		}
		return len(picks) < limit
	})
	out := make([]HistorySample, 0, len(picks))
	for _, p := range picks {
		if ctx.Err() != nil {
			break
		}
		res, err := n.cfg.Engine.History(ctx, p.channel, engine.HistoryQuery{Limit: 1})
		if err != nil {
			continue
		}
		kept := 0
		if len(res.Publications) > 0 {
			kept = int(res.Position.Offset - res.Publications[0].Offset + 1)
		}
		out = append(out, HistorySample{Namespace: p.namespace, Publications: kept})
	}
	return out
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

func (nopObserver) EngineCall(string, time.Duration, error)  {}
func (nopObserver) FannedOut(time.Duration)                  {}
func (nopObserver) Flushed(string, int, time.Duration)       {}
func (nopObserver) Received(string)                          {}
func (nopObserver) Dropped(string, string, int)              {}
func (nopObserver) Disconnected(string, protocol.Disconnect) {}
func (nopObserver) AuthFailed(uint32)                        {}
