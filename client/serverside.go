package client

import (
	"github.com/heraldrt/herald/internal/protocol"
)

// serverSub is a server-side subscription: a channel the server subscribed
// a WebSocket connection to by itself, from its token's "channels" claim.
// It has no Subscription; its events go to the Config.OnServer* handlers.
// Its fields are guarded by Client.mu.
type serverSub struct {
	// conn is the connection it is confirmed on; nil between connections.
	conn any
	// wire is the position right after the last event queued for
	// handlers, sent back in the connect command to resume from; hasWire
	// is false for channels without history.
	wire    StreamPosition
	hasWire bool
}

// serverPositionsLocked lists the positions to resume the server-side
// subscriptions from, for the connect command. Caller holds c.mu.
func (c *Client) serverPositionsLocked() map[string]protocol.StreamPosition {
	var out map[string]protocol.StreamPosition
	for ch, ss := range c.server {
		if !ss.hasWire {
			continue
		}
		if out == nil {
			out = make(map[string]protocol.StreamPosition)
		}
		out[ch] = protocol.StreamPosition{Epoch: ss.wire.Epoch, Offset: ss.wire.Offset}
	}
	return out
}

// serverSubscribed records the server's report that it subscribed conn to
// channel, and queues OnServerSubscribed.
func (c *Client) serverSubscribed(conn any, channel string, r protocol.SubscribeResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.server[channel]
	if ss == nil {
		ss = &serverSub{}
		c.server[channel] = ss
	}
	// As for a subscribe reply: a recovered stream continues from the
	// position sent in the connect command, else from the newest one.
	start := StreamPosition{Epoch: r.Epoch, Offset: r.Offset}
	if r.Recovered {
		start.Offset = ss.wire.Offset
	}
	ss.conn, ss.wire, ss.hasWire = conn, start, r.Recoverable && start.Epoch != ""
	ev := SubscribedEvent{Channel: channel, Position: start, Recoverable: r.Recoverable, WasRecovering: r.WasRecovering, Recovered: r.Recovered}
	c.emitLocked(nil, func() {
		if c.cfg.OnServerSubscribed != nil {
			c.cfg.OnServerSubscribed(ev)
		}
	})
}

// serverUnsubscribedLocked handles the server ending, or failing to make, a
// server-side subscription. A temporary failure ends the connection, since
// only a new connection makes the server subscribe again; any other ends
// the subscription for good. Caller holds c.mu.
func (c *Client) serverUnsubscribedLocked(channel string, e *Error) *endReason {
	if temporary(e.Code) {
		return &endReason{reason: "server-side subscription " + channel, err: e}
	}
	delete(c.server, channel)
	ev := UnsubscribedEvent{Channel: channel, Err: e}
	c.emitLocked(nil, func() {
		if c.cfg.OnServerUnsubscribed != nil {
			c.cfg.OnServerUnsubscribed(ev)
		}
	})
	return nil
}

// deliverServerLocked is deliver for a publication on a server-side
// subscription. Caller holds c.mu.
func (c *Client) deliverServerLocked(conn any, pub Publication) error {
	ss := c.server[pub.Channel]
	if ss == nil || ss.conn != conn {
		return nil
	}
	if ok, err := c.follows(pub, ss.wire, ss.hasWire); !ok {
		return err
	}
	if pub.Offset > 0 {
		pub.Epoch = ss.wire.Epoch
	}
	e := event{data: true, fn: func() {
		if c.cfg.OnServerPublication != nil {
			c.cfg.OnServerPublication(pub)
		}
	}}
	if !c.queue.tryPush(e) {
		return errSlowHandler
	}
	if pub.Offset > 0 && ss.hasWire {
		ss.wire.Offset = pub.Offset
	}
	return nil
}

// presenceServerLocked is presence for a server-side subscription. Caller
// holds c.mu.
func (c *Client) presenceServerLocked(conn any, join bool, channel string, info ClientInfo) error {
	if ss := c.server[channel]; ss == nil || ss.conn != conn {
		return nil
	}
	fn := func() {
		if c.cfg.OnServerLeave != nil {
			c.cfg.OnServerLeave(LeaveEvent{Channel: channel, Info: info})
		}
	}
	if join {
		fn = func() {
			if c.cfg.OnServerJoin != nil {
				c.cfg.OnServerJoin(JoinEvent{Channel: channel, Info: info})
			}
		}
	}
	if !c.queue.tryPush(event{data: true, fn: fn}) {
		return errSlowHandler
	}
	return nil
}
