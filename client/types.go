package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// Transport selects how a Client talks to the server. Every transport offers
// the same API and the same delivery guarantees; they differ in what the
// network between client and server lets through, and in latency.
type Transport int

const (
	// WebSocket (GET /ws) is bidirectional: commands and publications share
	// one connection. It is the zero value and the best choice where it works.
	WebSocket Transport = iota
	// SSE (GET /sse) carries every subscription on one Server-Sent Events
	// stream; commands are separate HTTP requests.
	SSE
	// LongPoll (GET /poll with a timeout) asks for publications in a loop,
	// each request waiting on the server until something arrives.
	LongPoll
	// ShortPoll (GET /poll without a timeout) asks at a fixed interval.
	ShortPoll
	// WebRTC (POST /webrtc) opens a peer connection to the server and
	// speaks the WebSocket protocol over its data channels, over UDP;
	// subscriptions with Latest set get their publications unreliably.
	WebRTC
)

func (t Transport) String() string {
	switch t {
	case WebSocket:
		return "websocket"
	case SSE:
		return "sse"
	case LongPoll:
		return "longpoll"
	case ShortPoll:
		return "shortpoll"
	case WebRTC:
		return "webrtc"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// bidirectional transports carry commands on the connection itself.
func (t Transport) bidirectional() bool { return t == WebSocket || t == WebRTC }

// ParseTransport returns the Transport named by s, as its String method
// spells it.
func ParseTransport(s string) (Transport, error) {
	for _, t := range []Transport{WebSocket, SSE, LongPoll, ShortPoll, WebRTC} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("client: unknown transport %q: want websocket, sse, longpoll, shortpoll or webrtc", s)
}

// State is a Client's connection state.
type State int

const (
	// StateDisconnected: not connected and not trying to; the state of a new
	// Client and of one the server refused for good.
	StateDisconnected State = iota
	// StateConnecting: connecting, or reconnecting after losing the connection.
	StateConnecting
	// StateConnected: connected; subscriptions are being kept up to date.
	StateConnected
	// StateClosed: Close was called. A closed Client cannot be reused.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// SubscriptionState is a Subscription's state.
type SubscriptionState int

const (
	// SubscriptionUnsubscribed: not wanted; no events are delivered.
	SubscriptionUnsubscribed SubscriptionState = iota
	// SubscriptionSubscribing: wanted, and waiting for the server to
	// confirm it (after Subscribe, or while the client reconnects).
	SubscriptionSubscribing
	// SubscriptionSubscribed: confirmed by the server; publications flow.
	SubscriptionSubscribed
)

func (s SubscriptionState) String() string {
	switch s {
	case SubscriptionUnsubscribed:
		return "unsubscribed"
	case SubscriptionSubscribing:
		return "subscribing"
	case SubscriptionSubscribed:
		return "subscribed"
	}
	return fmt.Sprintf("SubscriptionState(%d)", int(s))
}

// ClientInfo identifies a connected client: in presence, in join and leave
// events, and in publications sent by clients.
type ClientInfo struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// Publication is one message of a channel.
type Publication struct {
	Channel string
	// Offset numbers the channel's stored publications: 1, 2, 3, … with no
	// gap. It is 0 for an ephemeral publication, which is never stored.
	Offset uint64
	// Epoch names the generation of the channel's history the publication
	// belongs to (see StreamPosition). It is empty for ephemeral publications.
	Epoch string
	// Data is the JSON value that was published, byte for byte as the
	// server stored it.
	Data json.RawMessage
	// Info names the client that published it; nil for publications made
	// through the server API.
	Info *ClientInfo
	Tags map[string]string
	// Time is when the server accepted the publication, to the millisecond.
	Time time.Time
}

// Position is where the publication leaves its channel's stream.
func (p Publication) Position() StreamPosition {
	return StreamPosition{Epoch: p.Epoch, Offset: p.Offset}
}

// PublishResult acknowledges a stored publication: it is in the channel's
// history at Offset in Epoch. Both are zero for an ephemeral publication.
type PublishResult struct {
	Offset uint64
	Epoch  string
}

// HistoryOptions select publications from a channel's history. The zero
// value reads from the oldest retained publication, up to the server's
// max_history_limit.
type HistoryOptions struct {
	// Since, when set, reads the publications after this position; its epoch
	// must be the channel's current one (else the server answers code 113).
	Since *StreamPosition
	// Limit caps how many publications are returned; 0 means the server's
	// maximum.
	Limit int
	// Reverse reads from the newest publication backwards.
	Reverse bool
}

// HistoryResult holds publications and the channel's newest position when
// they were read. To page forwards, call History again with Since set to the
// last publication's Position.
type HistoryResult struct {
	Publications []Publication
	Position     StreamPosition
}

// PresenceStats counts a channel's subscribed clients and distinct
// authenticated users.
type PresenceStats struct {
	NumClients int
	NumUsers   int
}

// ConnectingEvent reports that the client lost its connection (or was told
// to connect) and is connecting again. Code and Reason are the server's close
// code and reason when it gave one; Err is what went wrong otherwise.
type ConnectingEvent struct {
	Code   uint16
	Reason string
	Err    error
}

// ConnectedEvent reports a connection. ClientID is the server's id for this
// connection, and User the user its token authenticated ("" when
// anonymous), on WebSocket and WebRTC; SSE and polling have neither. Data
// is what the server's connect proxy backend returned for this connection,
// on WebSocket and WebRTC; nil when it returned nothing.
type ConnectedEvent struct {
	ClientID  string
	User      string
	Transport Transport
	Data      json.RawMessage
}

// DisconnectedEvent reports that the client stopped connecting: the server
// refused it in a way that reconnecting would not fix (close codes
// 4500-4999, bad credentials). Err is the error Connect returns for it.
type DisconnectedEvent struct {
	Code   uint16
	Reason string
	Err    error
}

// ErrorEvent reports a failure the client recovers from by itself: a failed
// connection attempt, a malformed frame, a temporary server error.
type ErrorEvent struct {
	Err error
}

// SubscribedEvent reports that the server confirmed a subscription, the
// first time and again after every reconnect.
type SubscribedEvent struct {
	Channel string
	// Position is where the stream continues from: publications after it
	// follow, in order, with no gap.
	Position StreamPosition
	// Recoverable is false for channels without history: they can never be
	// resumed, and every reconnect continues from "now".
	Recoverable bool
	// WasRecovering is true when the client asked to resume from a position
	// (a resubscribe after a reconnect, or SubscriptionConfig.Since).
	WasRecovering bool
	// Recovered is true when that resume succeeded: every publication missed
	// follows. WasRecovering without Recovered means continuity is broken
	// (history lost, epoch changed): reload the channel's state.
	Recovered bool
}

// UnsubscribedEvent reports the end of a subscription: Err is nil after
// Unsubscribe, and the server's refusal (an *Error) when it would not
// subscribe the client.
type UnsubscribedEvent struct {
	Channel string
	Err     error
}

// JoinEvent reports a client subscribing to a channel whose namespace sends
// join and leave events. Only WebSocket and SSE carry them.
type JoinEvent struct {
	Channel string
	Info    ClientInfo
}

// LeaveEvent reports a client unsubscribing or disconnecting; see JoinEvent.
type LeaveEvent struct {
	Channel string
	Info    ClientInfo
}

// SubscriptionErrorEvent reports a subscription failure the client retries
// by itself, such as a temporary server error while subscribing.
type SubscriptionErrorEvent struct {
	Channel string
	Err     error
}
