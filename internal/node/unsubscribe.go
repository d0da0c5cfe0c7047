package node

import (
	"context"

	"github.com/heraldrt/herald/internal/protocol"
)

// maxUnsubscribing bounds the server-side unsubscribes a node runs at once;
// each one calls the engine, so a flood of them is dropped, not queued.
const maxUnsubscribing = 16

// unsubscribeReason is what a client unsubscribed by the server is told. Its
// code is not a temporary one, so clients do not subscribe again by
// themselves.
var unsubscribeReason = protocol.ErrPermissionDenied.With("unsubscribed by the server")

// Unsubscribe ends the subscriptions to channel of a user's connections, or
// of one client's, on every node. Each client is told with an unsubscribe
// push (code 103), which the SDKs take as final.
func (n *Node) Unsubscribe(ctx context.Context, f ConnectionFilter, channel string) error {
	if f.User == "" && f.Client == "" {
		return protocol.ErrBadRequest.With("user or client required")
	}
	if !protocol.ValidChannel(channel) {
		return protocol.ErrInvalidChannel.With("%q", truncate(channel, 64))
	}
	return n.broadcastControl(ctx, controlMessage{Type: controlUnsubscribe, User: f.User, Client: f.Client, Channel: channel})
}

// unsubscribeLocal carries out an unsubscribe control message on this
// node's sessions. It runs on the engine's delivery path, so the engine
// calls that releasing a subscription needs happen on a goroutine.
func (n *Node) unsubscribeLocal(m controlMessage) {
	f := ConnectionFilter{User: m.User, Client: m.Client}
	if f.User == "" && f.Client == "" || m.Channel == "" {
		return
	}
	var targets []*Session
	for _, s := range n.matchingSessions(f) {
		s.mu.Lock()
		subscribed := s.subs.get(m.Channel) != nil
		s.mu.Unlock()
		if subscribed {
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 {
		return
	}
	n.goBounded(n.cluster.unsubscribing, func() {
		frame, err := protocol.EncodePush(protocol.UnsubscribePush{
			Type: protocol.PushUnsubscribe, Channel: m.Channel, Code: unsubscribeReason.Code, Reason: unsubscribeReason.Message,
		})
		if err != nil {
			n.log.Error("unsubscribe push does not encode", "err", err)
			return
		}
		for _, s := range targets {
			// A subscription ended meanwhile is no one's to be told about.
			if s.Unsubscribe(context.Background(), m.Channel) != nil {
				continue
			}
			s.mu.Lock()
			s.enqueueLocked(Item{Kind: ItemFrame, Push: protocol.PushUnsubscribe, Channel: m.Channel, Frame: frame})
			s.mu.Unlock()
		}
	}, "server-side unsubscribe", "channel", m.Channel)
}
