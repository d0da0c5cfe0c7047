package node

import (
	"encoding/json"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// EventType names something that happened on a node, for an EventSink such
// as the webhook outbox. The types are bits so that a sink's filter is one
// mask.
type EventType uint16

const (
	// EventConnect: a session connected (a WebSocket connect command
	// succeeded, an SSE stream opened).
	EventConnect EventType = 1 << iota
	// EventDisconnect: a connected session ended. Code and Reason are the
	// close the server chose; both are empty when the client or its
	// network went away first.
	EventDisconnect
	// EventSubscribe: a session subscribed to Channel.
	EventSubscribe
	// EventUnsubscribe: a session left Channel, by its own request or
	// because it ended.
	EventUnsubscribe
	// EventPublish: a publication was accepted on Channel (server API or a
	// client), after the engine acknowledged it. It is reported by the node
	// that took the publish, once per publication.
	EventPublish
	// EventOccupied: Channel got its first session subscription on this
	// node; EventVacated: its last one on this node ended. Long polls do not
	// count. In a cluster each node reports its own occupancy.
	EventOccupied
	EventVacated
	// EventJoin and EventLeave: a session entered or left Channel's presence
	// (namespaces with presence only).
	EventJoin
	EventLeave

	// AllEvents is every type above.
	AllEvents = EventConnect | EventDisconnect | EventSubscribe | EventUnsubscribe | EventPublish |
		EventOccupied | EventVacated | EventJoin | EventLeave
)

var eventNames = [...]string{"connect", "disconnect", "subscribe", "unsubscribe", "publish", "occupied", "vacated", "join", "leave"}

// String is the type's name on the wire: "connect", "publish", …
func (t EventType) String() string {
	for i, name := range eventNames {
		if t == 1<<i {
			return name
		}
	}
	return "unknown"
}

// ParseEventType is String's inverse; ok is false for an unknown name.
func ParseEventType(name string) (t EventType, ok bool) {
	for i, n := range eventNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// Event is one thing that happened on a node. Fields that do not apply to
// the type are zero.
type Event struct {
	Type EventType
	Time time.Time
	// Node is the id of the node that saw it.
	Node string
	// Client, User and Transport identify the session; Info is the
	// connection info its token carried.
	Client    string
	User      string
	Transport string
	Info      json.RawMessage
	Channel   string
	// Offset and Epoch place a publication in its channel's stream (Offset
	// is zero for ephemeral publications); Data is its data and Tags its
	// tags. The node never changes them after the publish, so a sink may
	// keep them without copying.
	Offset uint64
	Epoch  string
	Data   json.RawMessage
	Tags   map[string]string
	// Code and Reason describe a disconnect the server chose.
	Code   uint16
	Reason string
}

// EventSink receives the node's events. Both methods are called on hot
// paths, some with locks held: they must not block nor call back into the
// node. Emit buffers with a bound of its own; what it cannot take is its
// to count and report.
type EventSink interface {
	// Wants reports whether an event of type t on channel (empty for
	// connect and disconnect) would be kept. The node asks before building
	// an event, so a sink that wants nothing costs no allocation.
	Wants(t EventType, channel string) bool
	Emit(Event)
}

// wants reports whether the configured sink takes events of type t on channel.
func (n *Node) wants(t EventType, channel string) bool {
	return n.cfg.Events != nil && n.cfg.Events.Wants(t, channel)
}

// emit stamps ev with the time and this node and hands it to the sink; the
// caller has checked wants.
func (n *Node) emit(ev Event) {
	ev.Time = time.Now()
	ev.Node = n.id
	n.cfg.Events.Emit(ev)
}

// emitSessionLocked reports a session event of type t on channel, if
// wanted. Caller must hold s.mu, which also orders a session's events.
func (s *Session) emitSessionLocked(t EventType, channel string) {
	if !s.n.wants(t, channel) {
		return
	}
	s.n.emit(Event{Type: t, Client: s.id, User: s.cred.UserID, Info: s.cred.Info, Transport: s.t.Name(), Channel: channel})
}

// emitDisconnect reports the end of a connected session as user; d is the
// close the server chose, or nil when the client went away first.
func (s *Session) emitDisconnect(user string, d *protocol.Disconnect) {
	if !s.n.wants(EventDisconnect, "") {
		return
	}
	ev := Event{Type: EventDisconnect, Client: s.id, User: user, Transport: s.t.Name()}
	if d != nil {
		ev.Code, ev.Reason = d.Code, d.Reason
	}
	s.n.emit(ev)
}

// emitPublish reports an acknowledged publication, if wanted.
func (n *Node) emitPublish(channel string, data json.RawMessage, pos protocol.PublishResult, info *protocol.ClientInfo, tags map[string]string) {
	if !n.wants(EventPublish, channel) {
		return
	}
	ev := Event{Type: EventPublish, Channel: channel, Offset: pos.Offset, Epoch: pos.Epoch, Data: data, Tags: tags}
	if info != nil {
		ev.Client, ev.User, ev.Info = info.Client, info.User, info.Info
	}
	n.emit(ev)
}

// occupancy reports a channel's first local subscriber arriving (occupied)
// or its last one leaving; the hub calls it under the channel's subscribe
// lock, so a channel's occupied and vacated events alternate.
func (n *Node) occupancy(channel string, occupied bool) {
	t := EventVacated
	if occupied {
		t = EventOccupied
	}
	if n.wants(t, channel) {
		n.emit(Event{Type: t, Channel: channel})
	}
}

// emitUnsubscribeLocked reports a live subscription ending, and its leaving
// presence. Caller must hold s.mu.
func (s *Session) emitUnsubscribeLocked(sub *subscription) {
	s.emitSessionLocked(EventUnsubscribe, sub.channel)
	if sub.presence {
		s.emitSessionLocked(EventLeave, sub.channel)
	}
}
