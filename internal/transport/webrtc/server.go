// Package webrtc is Herald's WebRTC data-channel transport (POST /webrtc):
// a client opens a peer connection to the server itself and speaks the
// Herald protocol over its data channels, with the same sessions, auth and
// resume as a WebSocket.
//
// The client is the offerer. It creates a reliable, ordered data channel
// labelled "herald", which carries commands, replies and pushes exactly as
// WebSocket text messages do, and may create an unordered channel without
// retransmissions labelled "herald-latest", which then carries the
// publications of its protocol.DeliveryLatest subscriptions. It POSTs its
// offer, with its ICE candidates gathered, as {"type":"offer","sdp":…} and
// gets the answer, with the server's candidates, in the same form: no
// trickle, one round trip. The session starts when "herald" opens.
//
// Each connection runs as a duplex.Conn on the transport's host; pion
// brings its own goroutines per peer connection (ICE, DTLS, SCTP), which
// end when it closes.
package webrtc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	pion "github.com/pion/webrtc/v4"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/pionlog"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/duplex"
)

// Data channel labels.
const (
	LabelReliable = "herald"
	LabelLatest   = "herald-latest"
)

// Config configures a Server. Zero values take the defaults documented on
// each field.
type Config struct {
	Node   *node.Node
	Logger *slog.Logger
	// MaxMessageSize bounds an inbound message in bytes (64 KiB + 4 KiB); a
	// larger one closes the connection with DisconnectMessageTooLarge.
	MaxMessageSize int
	// WriteTimeout bounds how long a connection's backlog may stay above
	// its high-water mark, and how long a closing connection waits for the
	// peer to acknowledge its disconnect push (10s).
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the time from the offer to the "herald"
	// channel opening (15s).
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds peer connections still in their handshake (1024):
	// each holds ICE and DTLS state before any session limit applies.
	MaxHandshakes int
	// IncludeLoopback offers loopback ICE candidates, for servers that
	// clients reach on loopback (development, tests, benchmarks).
	IncludeLoopback bool
	// PublicIPs replace the host candidates' addresses, for a server behind
	// a 1:1 NAT that knows its public addresses.
	PublicIPs []string
	// UDPPortMin and UDPPortMax bound the UDP ports peer connections use
	// (both zero: any ephemeral port).
	UDPPortMin, UDPPortMax uint16
}

const (
	defaultMaxMessageSize   = 64<<10 + 4<<10
	defaultWriteTimeout     = 10 * time.Second
	defaultHandshakeTimeout = 15 * time.Second
	defaultMaxHandshakes    = 1024
	// maxOfferSize bounds the offer's body: an SDP with a data channel and
	// a few dozen candidates takes a few KiB.
	maxOfferSize = 64 << 10
)

// Server is the data-channel transport. Create it with New, mount it on the
// HTTP server's mux, and stop it with Shutdown after the node's Shutdown.
type Server struct {
	host *duplex.Host
	api  *pion.API
	log  *slog.Logger
	cfg  Config

	handshakes atomic.Int32
	peers      duplex.Tracker[*peer]
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.MaxMessageSize < 0 || cfg.WriteTimeout < 0 || cfg.HandshakeTimeout < 0 || cfg.MaxHandshakes < 0 {
		return nil, errors.New("webrtc: negative MaxMessageSize, WriteTimeout, HandshakeTimeout or MaxHandshakes")
	}
	if cfg.UDPPortMin > cfg.UDPPortMax {
		return nil, fmt.Errorf("webrtc: UDP port range %d-%d is empty", cfg.UDPPortMin, cfg.UDPPortMax)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = defaultMaxMessageSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.MaxHandshakes == 0 {
		cfg.MaxHandshakes = defaultMaxHandshakes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, err := duplex.New(duplex.Config{
		Name:           "webrtc",
		Node:           cfg.Node,
		Logger:         cfg.Logger,
		MaxMessageSize: cfg.MaxMessageSize,
		WriteTimeout:   cfg.WriteTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	var se pion.SettingEngine
	se.LoggerFactory = pionlog.Factory(cfg.Logger, "webrtc: ")
	// Answers carry IP candidates; resolving a browser's mDNS names would
	// cost a multicast socket per connection, and its checks reach the
	// server anyway, which learns its address from them.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// Detect a vanished peer well before the session's own heartbeat would.
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	se.SetSCTPMaxMessageSize(uint32(cfg.MaxMessageSize))
	if cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("webrtc: %w", err)
		}
	}
	if len(cfg.PublicIPs) > 0 {
		rule := pion.ICEAddressRewriteRule{External: cfg.PublicIPs, AsCandidateType: pion.ICECandidateTypeHost, Mode: pion.ICEAddressRewriteReplace}
		if err := se.SetICEAddressRewriteRules(rule); err != nil {
			return nil, fmt.Errorf("webrtc: public IPs: %w", err)
		}
	}
	return &Server{
		host: host,
		api:  pion.NewAPI(pion.WithSettingEngine(se)),
		log:  cfg.Logger,
		cfg:  cfg,
	}, nil
}

// SessionDescription is the body of an offer and of its answer, in the
// form of the browser's RTCSessionDescriptionInit.
type SessionDescription struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// ServeHTTP answers an offer with the server's answer, once the server has
// gathered its ICE candidates. Errors are JSON protocol errors: 400 for a
// bad offer, 503 while shutting down or with too many handshakes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write(protocol.ErrorBody(protocol.ErrBadRequest.With("method %.16q not allowed, use POST", r.Method)))
		return
	}
	var offer SessionDescription
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOfferSize))
	if err == nil {
		err = json.Unmarshal(body, &offer)
	}
	if err != nil || offer.Type != "offer" || offer.SDP == "" {
		protocol.WriteHTTPError(w, protocol.ErrBadRequest.With("the body must be an offer: {\"type\":\"offer\",\"sdp\":…} of at most %d bytes", maxOfferSize))
		return
	}
	if s.handshakes.Add(1) > int32(s.cfg.MaxHandshakes) {
		s.handshakes.Add(-1)
		w.Header().Set("Retry-After", "1")
		protocol.WriteHTTPError(w, protocol.ErrTooManyRequests.With("too many WebRTC handshakes in progress"))
		return
	}
	// A token in the request (header, query or cookie) was checked by the
	// server's gate; without one, the connect command brings it.
	cred, authenticated := node.CredentialsFrom(r.Context())
	p, err := s.newPeer(cred, authenticated)
	if err != nil {
		s.handshakes.Add(-1)
		protocol.WriteHTTPError(w, err)
		return
	}
	answer, err := p.answer(r.Context(), offer.SDP)
	if err != nil {
		p.close(err)
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			perr = protocol.ErrBadRequest.With("%v", err)
		}
		protocol.WriteHTTPError(w, perr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(SessionDescription{Type: "answer", SDP: answer})
}

// Shutdown closes every peer connection. Call it after node.Shutdown, which
// has already told each session to go: connections still delivering that
// notice get until WriteTimeout to do so, or until shortly before ctx's
// deadline if that comes first, and are then closed without waiting; the
// others are dropped at once. It waits for every peer connection to be
// closed and every session finished, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	peers := s.peers.Stop()
	s.host.Stop()
	for _, p := range peers {
		p.abort()
	}
	// A client that vanished never acknowledges its notice; without this,
	// its WriteTimeout would outlast the shutdown's own deadline.
	grace, cancel := graceContext(ctx)
	err := s.peers.Wait(grace)
	cancel()
	if err != nil && ctx.Err() == nil {
		// No peer joins after Stop: the list taken then is every peer.
		for _, p := range peers {
			p.close(errShutdown)
		}
		err = s.peers.Wait(ctx)
	}
	if err == nil {
		err = s.host.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("webrtc: shutdown: %w", err)
	}
	return nil
}

// graceContext ends when ctx does, or earlier when ctx has a deadline:
// after three quarters of the time left, keeping the rest for closing the
// peer connections that are still saying goodbye.
func graceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*3/4))
}

var (
	errShutdown         = errors.New("server shutting down")
	errHandshakeTimeout = errors.New("data channel did not open in time")
	errGoodbyeTimeout   = errors.New("the client did not acknowledge its disconnect in time")
	errAborted          = errors.New("connection aborted")
)
