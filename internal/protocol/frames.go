package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Command methods a bidirectional client may send.
const (
	MethodConnect       = "connect"
	MethodSubscribe     = "subscribe"
	MethodUnsubscribe   = "unsubscribe"
	MethodPublish       = "publish"
	MethodHistory       = "history"
	MethodPresence      = "presence"
	MethodPresenceStats = "presence_stats"
	MethodPing          = "ping"
	// MethodRefresh replaces the session's connection token with a fresh one
	// before the old one expires.
	MethodRefresh = "refresh"
	// MethodPong answers a server ping push; it carries no id and gets no reply.
	MethodPong = "pong"
	// MethodSignal sends WebRTC signaling (an offer, an answer, an ICE
	// candidate) to one member of a room.
	MethodSignal = "signal"
	// MethodICEServers asks for the STUN and TURN servers, with short-lived
	// TURN credentials, to configure a peer connection with.
	MethodICEServers = "ice_servers"
	// MethodRPC calls a method of the application's backend through the
	// server's RPC proxy.
	MethodRPC = "rpc"
)

// RPCRequest calls Method on the application's backend with Data, opaque
// to the server.
type RPCRequest struct {
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// RPCResult carries the backend's answer to an RPCRequest.
type RPCResult struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// SignalRequest sends Data, opaque to the server, to the member To of the
// WebRTC room Channel; the sender must be a member too.
type SignalRequest struct {
	Channel string          `json:"channel"`
	To      string          `json:"to"`
	Data    json.RawMessage `json:"data"`
}

// SignalPush delivers a signal to its recipient alone.
type SignalPush struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	From    ClientInfo      `json:"from"`
	Data    json.RawMessage `json:"data"`
}

// ICEServer has the fields of the WebRTC RTCIceServer dictionary, so a
// browser passes it to RTCPeerConnection unchanged.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServersResult answers MethodICEServers. TTL is how many seconds the
// TURN credentials work; a client asks again before then.
type ICEServersResult struct {
	ICEServers []ICEServer `json:"ice_servers"`
	TTL        int         `json:"ttl,omitempty"`
}

// Push types the server sends without a command id.
const (
	PushPublication = "publication"
	PushJoin        = "join"
	PushLeave       = "leave"
	PushUnsubscribe = "unsubscribe"
	PushDisconnect  = "disconnect"
	PushPing        = "ping"
	// PushSubscribed reports a subscription the client did not ask for with
	// a command: a server-side subscription from its token's channels claim
	// on WebSocket, and every subscription of an SSE stream.
	PushSubscribed = "subscribed"
	// PushRefresh asks the client to send a fresh token (MethodRefresh)
	// before its current one expires.
	PushRefresh = "refresh"
	// PushSignal carries a signal another member of a room sent to this
	// client alone.
	PushSignal = "signal"
)

// MaxCommandsPerFrame bounds how many newline-separated commands one inbound
// frame may carry, so a single frame cannot queue unbounded work.
const MaxCommandsPerFrame = 128

// Command is one client request. Commands with a non-zero ID get exactly one
// Reply with the same ID.
type Command struct {
	ID     uint32          `json:"id,omitempty"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Reply answers the command with the same ID: either Result or Error is set.
type Reply struct {
	ID     uint32 `json:"id"`
	Result any    `json:"result,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// ConnectRequest opens a session. Token is the connection JWT; without one
// the client is anonymous, which a namespace may or may not allow. Subs
// holds, for a reconnecting client, the last position it saw on each of its
// server-side subscriptions (its token's channels claim), to resume them.
// Data goes to the connect proxy, when the server asks the backend instead
// of checking a token.
type ConnectRequest struct {
	Token string                    `json:"token,omitempty"`
	Data  json.RawMessage           `json:"data,omitempty"`
	Name  string                    `json:"name,omitempty"`
	Subs  map[string]StreamPosition `json:"subs,omitempty"`
}

// ConnectResult tells the client its id, its user and the heartbeat
// contract: the server sends a ping push every Ping seconds and expects a
// pong within Pong seconds. ExpiresIn, when not zero, is the seconds left
// before the connection token expires: the client must refresh it before then.
// Data is what a connect proxy's backend returned for the client.
type ConnectResult struct {
	Client    string          `json:"client"`
	User      string          `json:"user,omitempty"`
	Version   string          `json:"version"`
	Ping      int             `json:"ping"`
	Pong      int             `json:"pong"`
	ExpiresIn int             `json:"expires_in,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// RefreshRequest carries a fresh connection token for the same user.
type RefreshRequest struct {
	Token string `json:"token"`
}

// RefreshResult tells the seconds left before the new token expires; zero
// means it never does.
type RefreshResult struct {
	ExpiresIn int `json:"expires_in,omitempty"`
}

// RefreshPush asks the client to refresh its token within ExpiresIn seconds.
type RefreshPush struct {
	Type      string `json:"type"`
	ExpiresIn int    `json:"expires_in"`
}

// SubscribeRequest subscribes to a channel. With Recover set, the server
// resumes from (Epoch, Offset): the last publication the client saw. Token is
// a subscription token, required by private namespaces. Delivery is
// DeliveryReliable or DeliveryLatest.
type SubscribeRequest struct {
	Channel  string `json:"channel"`
	Token    string `json:"token,omitempty"`
	Recover  bool   `json:"recover,omitempty"`
	Epoch    string `json:"epoch,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	Delivery string `json:"delivery,omitempty"`
}

// Subscription delivery modes.
const (
	// DeliveryReliable: every publication, in order, on every transport.
	DeliveryReliable = ""
	// DeliveryLatest: only the newest value matters (cursors, game state).
	// On a WebRTC connection with an unreliable data channel the
	// subscription's publications take that channel: unordered, never
	// retransmitted, and of several waiting only the newest is sent. Other
	// transports deliver them reliably.
	DeliveryLatest = "latest"
)

// SubscribeResult reports the channel's newest position when the reply was
// made. When the client asked to recover, Recovered says whether every missed
// publication follows the reply, as ordinary publication pushes (true), or
// continuity is broken and the client should reload its state (false). Live
// publications follow either way, with no gap and no duplicate.
type SubscribeResult struct {
	Epoch         string `json:"epoch"`
	Offset        uint64 `json:"offset"`
	Recoverable   bool   `json:"recoverable"`
	WasRecovering bool   `json:"was_recovering,omitempty"`
	Recovered     bool   `json:"recovered,omitempty"`
}

// UnsubscribeRequest ends a subscription.
type UnsubscribeRequest struct {
	Channel string `json:"channel"`
}

// PublishRequest publishes Data to Channel. Ephemeral publications are
// delivered live and not stored. A repeated IdempotencyKey within the
// server's idempotency window returns the first result instead of storing twice.
type PublishRequest struct {
	Channel        string            `json:"channel"`
	Data           json.RawMessage   `json:"data"`
	Ephemeral      bool              `json:"ephemeral,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// PublishResult is the acknowledgement of a stored publication: it is in
// history at Offset in Epoch. Both are zero for an ephemeral publication.
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// HistoryRequest reads a channel's history. Without Since it reads from the
// oldest retained publication (or the newest, with Reverse).
type HistoryRequest struct {
	Channel string          `json:"channel"`
	Since   *StreamPosition `json:"since,omitempty"`
	Limit   int             `json:"limit,omitempty"`
	Reverse bool            `json:"reverse,omitempty"`
}

// HistoryResult holds publications and the channel's current position.
type HistoryResult struct {
	Publications []Publication `json:"publications"`
	Epoch        string        `json:"epoch"`
	Offset       uint64        `json:"offset"`
}

// PresenceRequest asks who is subscribed to a channel.
type PresenceRequest struct {
	Channel string `json:"channel"`
}

// PresenceResult maps client id to client info.
type PresenceResult struct {
	Clients map[string]ClientInfo `json:"clients"`
}

// PresenceStatsResult counts a channel's clients and distinct users.
type PresenceStatsResult struct {
	NumClients int `json:"num_clients"`
	NumUsers   int `json:"num_users"`
}

// DecodeCommands splits an inbound frame into commands. A frame holds one
// JSON command per line; empty lines are ignored.
func DecodeCommands(frame []byte) ([]Command, error) {
	var cmds []Command
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(cmds) == MaxCommandsPerFrame {
			return nil, ErrBadRequest.With("more than %d commands in one frame", MaxCommandsPerFrame)
		}
		var c Command
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, ErrBadRequest.With("malformed command: %v", err)
		}
		if c.Method == "" {
			return nil, ErrBadRequest.With("command without method")
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return nil, ErrBadRequest.With("empty frame")
	}
	return cmds, nil
}

// DecodeParams unmarshals a command's params into v, reporting a bad request
// with the reason when they do not fit.
func DecodeParams(c *Command, v any) error {
	if len(c.Params) == 0 {
		return ErrBadRequest.With("%s: params required", c.Method)
	}
	if err := json.Unmarshal(c.Params, v); err != nil {
		return ErrBadRequest.With("%s: %v", c.Method, err)
	}
	return nil
}

// NormalizeData validates publication data as JSON and returns it compacted.
// Compacting once at acceptance guarantees data holds no raw newline, so it can
// be embedded unchanged in newline-delimited frames and SSE data lines.
func NormalizeData(data []byte) (json.RawMessage, error) {
	if len(data) == 0 {
		return nil, ErrBadRequest.With("data required")
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, ErrBadRequest.With("data is not valid JSON: %v", err)
	}
	return buf.Bytes(), nil
}

// Marshal encodes v as compact JSON without escaping HTML characters: the
// encoding of replies and HTTP answers, which embed publication data that
// must reach clients byte for byte as it was accepted (json.Marshal would
// turn "<" into "\u003c" inside it).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// EncodeReply encodes a reply frame.
func EncodeReply(r *Reply) []byte {
	b, err := Marshal(r)
	if err != nil {
		b, _ = Marshal(&Reply{ID: r.ID, Error: ErrInternal.With("encode reply: %v", err)})
	}
	return b
}

// AppendPublication appends the publication push frame for pub to dst. The
// same bytes serve every subscriber of the channel on every transport: they
// are the WebSocket push and the SSE data line. It is hand-written because
// the fan-out path encodes one frame per publication per node.
func AppendPublication(dst []byte, pub *Publication) []byte {
	dst = append(dst, `{"type":"publication","channel":"`...)
	dst = append(dst, pub.Channel...) // ValidChannel names need no escaping.
	dst = append(dst, `","offset":`...)
	dst = appendUint(dst, pub.Offset)
	dst = append(dst, `,"data":`...)
	dst = append(dst, pub.Data...)
	if pub.Info != nil {
		dst = append(dst, `,"info":`...)
		dst = appendJSON(dst, pub.Info)
	}
	if len(pub.Tags) > 0 {
		dst = append(dst, `,"tags":`...)
		dst = appendJSON(dst, pub.Tags)
	}
	dst = append(dst, `,"time":`...)
	dst = appendUint(dst, uint64(pub.Time))
	return append(dst, '}')
}

// JoinLeavePush is the frame of a join or leave event.
type JoinLeavePush struct {
	Type    string     `json:"type"`
	Channel string     `json:"channel"`
	Info    ClientInfo `json:"info"`
}

// UnsubscribePush tells a client that the server ended one subscription.
type UnsubscribePush struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Code    uint32 `json:"code"`
	Reason  string `json:"reason"`
}

// DisconnectPush is sent before the server closes a connection on transports
// without close frames of their own.
type DisconnectPush struct {
	Type string `json:"type"`
	Disconnect
}

// PingFrame is the server's heartbeat push; clients answer with a pong command.
var PingFrame = []byte(`{"type":"ping"}`)

// EncodePush encodes any push struct. Pushes other than publications are rare
// enough that reflection-based encoding costs nothing that matters. It fails
// only when a push embeds client-supplied JSON that is not valid (a client's
// info), which callers drop rather than send.
func EncodePush(v any) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("protocol: push %T does not encode: %w", v, err)
	}
	return b, nil
}

func appendUint(dst []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

func appendJSON(dst []byte, v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}
