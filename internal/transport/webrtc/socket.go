package webrtc

import (
	"errors"
	"sync/atomic"

	pion "github.com/pion/webrtc/v4"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/duplex"
)

// Backlog bounds of a data channel, in bytes the client has not yet
// acknowledged.
const (
	writeHighWater = 1 << 20
	writeLowWater  = 256 << 10
	// latestBacklog: a latest-only publication is dropped rather than
	// queued behind this much on "herald-latest"; a newer one follows.
	latestBacklog = 64 << 10
)

// socket implements duplex.LatestSocket over a peer's data channels.
type socket struct {
	p         *peer
	dc        *pion.DataChannel
	conn      *duplex.Conn
	wantDrain atomic.Bool
	// deaf: inbound messages are no longer delivered.
	deaf atomic.Bool
	// goodbye: CloseWith has sent the disconnect push, and the peer
	// connection closes when the client has it, or after WriteTimeout.
	goodbye atomic.Bool
	done    atomic.Bool
}

func newSocket(p *peer, dc *pion.DataChannel, conn *duplex.Conn) *socket {
	s := &socket{p: p, dc: dc, conn: conn}
	dc.SetBufferedAmountLowThreshold(writeLowWater)
	dc.OnBufferedAmountLow(s.onLow)
	dc.OnMessage(s.onMessage)
	dc.OnClose(func() { p.close(errors.New("data channel closed")) })
	return s
}

func (s *socket) onMessage(msg pion.DataChannelMessage) {
	switch {
	case s.deaf.Load():
	case !msg.IsString:
		s.conn.Binary()
	case len(msg.Data) > s.p.srv.cfg.MaxMessageSize:
		// Pion refuses messages over the SCTP limit advertised in the
		// answer; this is a peer that ignored it.
		s.deaf.Store(true)
		s.conn.TooLarge()
	default:
		s.conn.Text(msg.Data)
	}
}

func (s *socket) onLow() {
	if s.wantDrain.CompareAndSwap(true, false) {
		s.conn.Drained()
	}
}

// WriteText implements duplex.Socket.
func (s *socket) WriteText(p []byte) error { return s.dc.SendText(string(p)) }

// Blocked implements duplex.Socket.
func (s *socket) Blocked() bool {
	if s.dc.BufferedAmount() <= writeHighWater {
		return false
	}
	s.wantDrain.Store(true)
	// The backlog may have drained between the two reads, before onLow
	// could see wantDrain: check again so the notification is never lost.
	if s.dc.BufferedAmount() <= writeLowWater && s.wantDrain.CompareAndSwap(true, false) {
		return false
	}
	return true
}

// CloseWith implements duplex.Socket: a data channel has no close frame,
// so the reason goes as a disconnect push, the channel's last message.
func (s *socket) CloseWith(d protocol.Disconnect) {
	s.deaf.Store(true)
	if s.goodbye.CompareAndSwap(false, true) {
		s.p.sayGoodbye(s.dc, d)
	}
}

// Abort implements duplex.Socket. A connection saying goodbye is left to
// finish it: the disconnect push is on its way, and its timer bounds the
// wait.
func (s *socket) Abort() {
	if !s.goodbye.Load() {
		s.p.close(errAborted)
	}
}

// HasLatestPath implements duplex.LatestSocket.
func (s *socket) HasLatestPath() bool { return s.p.latestChannel() != nil }

// WriteLatest implements duplex.LatestSocket. Failures are not the
// session's: the publication was allowed to be lost.
func (s *socket) WriteLatest(p []byte) error {
	ch := s.p.latestChannel()
	if ch != nil && ch.BufferedAmount() <= latestBacklog {
		_ = ch.SendText(string(p))
	}
	return nil
}

// finish reports the end of the connection to the session, once.
func (s *socket) finish(cause error) {
	if s.done.CompareAndSwap(false, true) {
		s.deaf.Store(true)
		s.conn.Closed(cause)
	}
}
