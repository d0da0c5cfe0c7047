// Package engine declares what Herald's core needs from a storage and
// messaging backend: publishing with history and offsets, node-level
// subscriptions, history reads, presence and a control bus between nodes.
// Implementations live in subpackages (memory, durable, redis, nats)
// and all pass the enginetest conformance suite.
package engine

import (
	"context"
	"errors"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("engine closed")

// Handler receives what an engine delivers to this node. Calls for one
// channel are made one at a time, publications in increasing offset order;
// calls for different channels may run concurrently. A publication is in
// history before it is delivered, so a node that subscribes and then reads
// history misses nothing. Implementations must not block: the engine's
// delivery path waits for them.
type Handler interface {
	// HandlePublication delivers a publication on a channel this node is
	// subscribed to. epoch is the channel's epoch at the time it was stored
	// ("" for an ephemeral publication, whose Offset is 0).
	HandlePublication(pub *protocol.Publication, epoch string)
	// HandleJoin and HandleLeave deliver presence events on subscribed channels.
	HandleJoin(channel string, info protocol.ClientInfo)
	HandleLeave(channel string, info protocol.ClientInfo)
	// HandleControl delivers a control-bus message sent to this node or to all.
	HandleControl(data []byte)
}

// ResyncHandler is implemented by handlers that can repair a channel's
// stream after deliveries may have been lost, for example while an engine's
// connection to its broker was down. An engine whose handler implements it
// calls HandleResync for each subscribed channel once that channel's
// subscription is restored, so a node notices a gap even on a channel that
// publishes nothing more. It must not block, like every Handler call.
type ResyncHandler interface {
	HandleResync(channel string)
}

// PublishOptions shape one publication.
type PublishOptions struct {
	// HistorySize and HistoryTTL bound the channel's stored history. A
	// publication with HistorySize 0 is not stored and gets offset 0, like an
	// ephemeral one; it is ordered only among other unstored publications,
	// not against stored ones. Size retention is applied with each publish,
	// so the latest publish's HistorySize wins; age is per publication (its
	// own time plus its own HistoryTTL), so a later, longer TTL never brings
	// back an expired publication.
	HistorySize int
	HistoryTTL  time.Duration
	// IdempotencyKey, when set, makes a repeat publish within IdempotencyTTL
	// (one minute when zero) return the first result without storing or
	// delivering again.
	IdempotencyKey string
	IdempotencyTTL time.Duration
	Info           *protocol.ClientInfo
	Tags           map[string]string
}

// HistoryQuery selects publications from a channel's history.
type HistoryQuery struct {
	// Since, when set, selects publications after Since.Offset (before it,
	// with Reverse). The epoch is not checked here: the caller compares it with
	// the returned position to decide whether the read means anything.
	Since *protocol.StreamPosition
	// Limit caps the publications returned: 0 returns only the position, a
	// negative value everything retained.
	Limit   int
	Reverse bool
}

// HistoryResult is a history read: publications in the order asked for, and
// the channel's current position (its newest offset and epoch), read
// atomically with them.
type HistoryResult struct {
	Publications []*protocol.Publication
	Position     protocol.StreamPosition
}

// PresenceStats counts a channel's present clients and distinct users.
// Anonymous clients (empty user) count as clients, never as users.
type PresenceStats struct {
	NumClients int
	NumUsers   int
}

// Broker publishes, stores and delivers publications. Engines copy what
// they are given; publications they return or deliver are shared and must
// not be modified.
type Broker interface {
	// Publish stores data in the channel's history (when opts.HistorySize > 0)
	// and delivers it to every node subscribed to the channel. The returned
	// position is the publication's own: when Publish returns without error
	// the publication is durable to the engine's promise (synced to disk for
	// the durable engine).
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (protocol.StreamPosition, error)
	// PublishJoin and PublishLeave deliver presence events to subscribed nodes.
	PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error
	PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error
	// Subscribe makes this node receive the channel's deliveries. When it
	// returns, every later publication is delivered: callers subscribe before
	// reading history to recover without a gap.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// History reads the channel's history. Reading a channel never used
	// before creates its epoch (a stored write in persistent engines), so
	// callers authorize before reading.
	History(ctx context.Context, channel string, q HistoryQuery) (HistoryResult, error)
	// RemoveHistory deletes the channel's stored publications. Offsets keep
	// rising after it and the epoch stays, so positions remain comparable.
	RemoveHistory(ctx context.Context, channel string) error
}

// PresenceManager tracks which clients are in which channel. Entries expire
// after the engine's presence TTL unless AddPresence refreshes them, so a
// dead node's clients disappear.
type PresenceManager interface {
	AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error
	RemovePresence(ctx context.Context, channel, clientID string) error
	Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error)
	PresenceStats(ctx context.Context, channel string) (PresenceStats, error)
}

// ControlBus carries node-to-node messages (disconnect a user everywhere,
// node discovery).
type ControlBus interface {
	// PublishControl sends data to node toNode, or to every node when toNode
	// is empty (the sender included).
	PublishControl(ctx context.Context, data []byte, toNode string) error
}

// Engine is everything a node needs from its backend.
type Engine interface {
	Broker
	PresenceManager
	ControlBus
	// Start begins delivering to h as node nodeID. It is called once, before
	// any Subscribe.
	Start(ctx context.Context, nodeID string, h Handler) error
	// Close stops deliveries and releases resources (flushing and closing the
	// store for the durable engine). It is safe to call more than once.
	Close(ctx context.Context) error
}
