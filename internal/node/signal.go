package node

import (
	"context"
	"encoding/json"

	"github.com/heraldrt/herald/internal/protocol"
)

// WebRTC signaling. A room is a channel of a namespace with WebRTC set; its
// members are the channel's presence. A signal (an SDP offer or answer, an
// ICE candidate, or anything else two peers agree on) goes from one member
// to one other, never to the room: the node that holds the recipient
// delivers it, reached over the control bus when it is not this one.
//
// The server reads nothing of a signal's data but its size, so a room's
// peers may later talk to a media server (an SFU) as a member like any
// other without a change here.

// ICEServersFunc returns the ICE servers, with short-lived TURN credentials
// for user, that a client configures its peer connections with.
type ICEServersFunc func(user string) (protocol.ICEServersResult, error)

// controlSignal carries a signal to the node of its recipient.
const controlSignal = "signal"

// signal checks that the session may signal the recipient and sends it.
func (s *Session) signal(ctx context.Context, req protocol.SignalRequest) error {
	ns, err := s.n.ns.resolve(req.Channel)
	if err != nil {
		return err
	}
	if !ns.WebRTC {
		return protocol.ErrNotAvailable.With("namespace %q is not a WebRTC namespace", ns.Name)
	}
	if req.To == "" || req.To == s.id {
		return protocol.ErrBadRequest.With("signal needs a recipient other than the sender")
	}
	if len(req.Data) == 0 {
		return protocol.ErrBadRequest.With("signal needs data")
	}
	if most := s.n.limits().MaxPublicationSize; len(req.Data) > most {
		return protocol.ErrMessageTooLarge.With("signal of %d bytes, the limit is %d", len(req.Data), most)
	}
	s.mu.Lock()
	sub := s.subs.get(req.Channel)
	member := sub != nil && !sub.removed
	s.mu.Unlock()
	if !member {
		return protocol.ErrNotSubscribed.With("join room %q before signaling in it", truncate(req.Channel, 64))
	}
	members, err := s.n.engine.Presence(ctx, req.Channel)
	if err != nil {
		return protocol.ErrNotAvailable.With("room members: %v", err)
	}
	if _, ok := members[req.To]; !ok {
		return protocol.ErrNoRecipient.With("client %q is not in room %q", truncate(req.To, 64), truncate(req.Channel, 64))
	}
	frame, err := protocol.EncodePush(protocol.SignalPush{Type: protocol.PushSignal, Channel: req.Channel, From: s.clientInfo(), Data: req.Data})
	if err != nil {
		return protocol.ErrBadRequest.With("signal data: %v", err)
	}
	if s.n.deliverSignal(req.To, req.Channel, frame) {
		return nil
	}
	// The recipient is on another node, or gone since the presence read:
	// every node looks, the one that holds it delivers.
	s.n.sendControl(controlMessage{Type: controlSignal, Client: req.To, Channel: req.Channel, Frame: frame}, "")
	return nil
}

// deliverSignal queues a signal frame for a local session that is still in
// the room, and reports whether the session is here.
func (n *Node) deliverSignal(client, channel string, frame json.RawMessage) bool {
	s := n.sessions.get(client)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs.get(channel); sub != nil && !sub.removed {
		s.enqueueLocked(Item{Kind: ItemFrame, Push: protocol.PushSignal, Channel: channel, Frame: frame})
	}
	return true
}

// iceServers answers MethodICEServers: no servers when none are configured,
// so a client still connects peers on host candidates.
func (s *Session) iceServers() (protocol.ICEServersResult, error) {
	if s.n.cfg.ICEServers == nil {
		return protocol.ICEServersResult{ICEServers: []protocol.ICEServer{}}, nil
	}
	// Anonymous clients get credentials of their own, so per-user relay
	// quotas apply to each of them.
	user := s.cred.UserID
	if user == "" {
		user = "anonymous-" + s.id
	}
	return s.n.cfg.ICEServers(user)
}
