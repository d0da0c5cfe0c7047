package webrtc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/duplex"
)

// peer is one client's peer connection with the server. Its session exists
// from the moment the "herald" channel opens until close.
type peer struct {
	srv  *Server
	pc   *pion.PeerConnection
	cred node.Credentials
	auth bool

	mu sync.Mutex
	// handshaking holds one of the server's handshake slots until "herald"
	// opens or the peer closes; handshake ends the peer when it is too slow.
	handshaking bool
	handshake   *time.Timer
	sock        *socket           // set when "herald" arrives, attached once it opens
	latest      *pion.DataChannel // the first "herald-latest"; used once open
	closed      bool
}

func (s *Server) newPeer(cred node.Credentials, auth bool) (*peer, error) {
	pc, err := s.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, protocol.ErrInternal.With("peer connection: %v", err)
	}
	p := &peer{srv: s, pc: pc, cred: cred, auth: auth}
	if !s.peers.Add(p) {
		_ = pc.Close()
		return nil, protocol.ErrShuttingDown
	}
	p.mu.Lock()
	p.handshaking = true
	p.handshake = time.AfterFunc(s.cfg.HandshakeTimeout, p.handshakeExpired)
	p.mu.Unlock()
	pc.OnDataChannel(p.onDataChannel)
	pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		if st == pion.PeerConnectionStateFailed || st == pion.PeerConnectionStateClosed {
			p.close(fmt.Errorf("peer connection %s", st))
		}
	})
	return p, nil
}

// answer applies the client's offer and returns the server's answer SDP,
// with every local candidate in it.
func (p *peer) answer(ctx context.Context, offer string) (string, error) {
	if err := p.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: offer}); err != nil {
		return "", protocol.ErrBadRequest.With("offer: %v", err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", protocol.ErrBadRequest.With("answer: %v", err)
	}
	gathered := pion.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", protocol.ErrInternal.With("answer: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.srv.cfg.HandshakeTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", protocol.ErrNotAvailable.With("gathering ICE candidates: %v", ctx.Err())
	}
	return p.pc.LocalDescription().SDP, nil
}

// onDataChannel accepts the client's channels: "herald" carries the
// session, "herald-latest" its latest-only publications. Anything else is
// closed, and so is a second channel of either label: each open channel
// holds buffers, and a peer connection may carry thousands. Pion runs it
// before the channel's first message can arrive, so the handlers it sets
// miss none.
func (p *peer) onDataChannel(dc *pion.DataChannel) {
	switch dc.Label() {
	case LabelReliable:
		if !dc.Ordered() || dc.MaxRetransmits() != nil || dc.MaxPacketLifeTime() != nil {
			p.close(errors.New(`the "herald" data channel must be ordered and reliable`))
			return
		}
		p.start(dc)
	case LabelLatest:
		p.mu.Lock()
		first := p.latest == nil
		if first {
			p.latest = dc
		}
		p.mu.Unlock()
		if !first {
			_ = dc.Close()
		}
	default:
		_ = dc.Close()
	}
}

// start begins the session on "herald". Its socket is attached when the
// channel is open for sending; commands may arrive before that, and their
// replies wait in the session's queue.
func (p *peer) start(dc *pion.DataChannel) {
	p.mu.Lock()
	if p.closed || p.sock != nil {
		p.mu.Unlock()
		_ = dc.Close()
		return
	}
	p.endHandshakeLocked()
	conn, err := p.srv.host.Open(p.cred, p.auth)
	if err != nil {
		p.mu.Unlock()
		p.refuse(dc, err)
		return
	}
	sock := newSocket(p, dc, conn)
	p.sock = sock
	p.mu.Unlock()
	dc.OnOpen(func() { conn.Attach(sock) })
}

// refuse tells the client why it gets no session (shutting down, over a
// limit), as a WebSocket would in its HTTP answer, then ends.
func (p *peer) refuse(dc *pion.DataChannel, err error) {
	d := protocol.DisconnectShutdown
	if !errors.Is(err, protocol.ErrShuttingDown) {
		d = protocol.DisconnectConnectionLimit
		d.Reason = protocol.AsError(err).Message
	}
	dc.OnOpen(func() { p.sayGoodbye(dc, d) })
}

// sayGoodbye sends d as the last message on dc and ends the peer
// connection once the client has acknowledged everything sent, or after
// WriteTimeout.
func (p *peer) sayGoodbye(dc *pion.DataChannel, d protocol.Disconnect) {
	frame, _ := protocol.EncodePush(protocol.DisconnectPush{Type: protocol.PushDisconnect, Disconnect: d})
	timer := time.AfterFunc(p.srv.cfg.WriteTimeout, func() { p.close(errGoodbyeTimeout) })
	acked := func() {
		timer.Stop()
		p.close(nil)
	}
	// The callback fires when the amount falls to the threshold, which
	// happens as the client acknowledges the last bytes.
	dc.SetBufferedAmountLowThreshold(0)
	dc.OnBufferedAmountLow(acked)
	if err := dc.SendText(string(frame)); err != nil || dc.BufferedAmount() == 0 {
		acked()
	}
}

// latestChannel returns "herald-latest" when it is open.
func (p *peer) latestChannel() *pion.DataChannel {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.latest == nil || p.latest.ReadyState() != pion.DataChannelStateOpen {
		return nil
	}
	return p.latest
}

// abort drops the peer connection at once, unless its session is saying
// goodbye (see socket.Abort).
func (p *peer) abort() {
	p.mu.Lock()
	sock := p.sock
	p.mu.Unlock()
	if sock != nil {
		sock.Abort()
		return
	}
	p.close(errShutdown)
}

// endHandshakeLocked releases the handshake slot, once. Caller holds p.mu.
func (p *peer) endHandshakeLocked() {
	if p.handshaking {
		p.handshaking = false
		p.handshake.Stop()
		p.srv.handshakes.Add(-1)
	}
}

func (p *peer) handshakeExpired() {
	p.mu.Lock()
	if !p.handshaking {
		p.mu.Unlock()
		return
	}
	sock, closing := p.beginCloseLocked()
	p.mu.Unlock()
	if closing {
		p.endClose(sock, errHandshakeTimeout)
	}
}

// close ends the peer connection once: the session learns of it at once,
// and the server forgets the peer once pion has released it.
func (p *peer) close(cause error) {
	p.mu.Lock()
	sock, closing := p.beginCloseLocked()
	p.mu.Unlock()
	if closing {
		p.endClose(sock, cause)
	}
}

// beginCloseLocked marks the peer closed, reporting false when it was
// already. Caller holds p.mu.
func (p *peer) beginCloseLocked() (*socket, bool) {
	if p.closed {
		return nil, false
	}
	p.closed = true
	p.endHandshakeLocked()
	return p.sock, true
}

func (p *peer) endClose(sock *socket, cause error) {
	p.srv.log.Debug("webrtc peer closed", "err", cause)
	if sock != nil {
		sock.finish(cause)
	}
	// Closing waits for DTLS and SCTP to wind down; never on the caller,
	// which may be one of pion's callbacks.
	go func() {
		_ = p.pc.Close()
		p.srv.peers.Remove(p)
	}()
}

var _ duplex.LatestSocket = (*socket)(nil)
