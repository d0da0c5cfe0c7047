// Package turn is Herald's embedded STUN and TURN server (pion/turn): it
// tells WebRTC peers their public address and relays their traffic when
// NAT or a firewall keeps them from reaching each other directly. Clients
// never get a static password: the server hands authenticated clients
// short-lived credentials in the TURN REST API form (username
// "expiry:user", password an HMAC of it), which any TURN server sharing
// the secret accepts.
package turn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/heraldrt/herald/internal/pionlog"
)

// Config configures a Server. Addr and Secret are required.
type Config struct {
	// Addr is the host:port the server listens on, UDP and TCP alike; port
	// 0 picks one free port for both. The host must be an IP address.
	Addr string
	// PublicIP is the address relayed candidates carry, the one peers
	// reach the relay at; empty means Addr's host, which only works when
	// that is not a wildcard.
	PublicIP string
	// TLSAddr, with TLS, also serves TURN over TLS ("turns:") on this address.
	TLSAddr string
	TLS     *tls.Config
	// Secret signs credentials; at least 32 bytes.
	Secret string
	// Realm names the server in the TURN handshake ("herald" when empty).
	Realm string
	// CredentialTTL is how long handed-out credentials work (1h when zero).
	CredentialTTL time.Duration
	// AllowedPeers are the loopback, private and link-local prefixes the
	// relay may reach anyway (a test on one machine, a relay meant for a
	// private network). Other peers of those kinds are refused, so the relay
	// cannot be used to reach the server's own network.
	AllowedPeers []netip.Prefix
	// MaxAllocationsPerUser bounds one user's relay allocations (0: no limit).
	MaxAllocationsPerUser int
	// UserBitrate bounds the bytes per second one user's allocations relay,
	// both directions together; UDP packets beyond it are dropped, as a
	// congested network would, and the connections of TCP allocations
	// (RFC 6062) are slowed down to it (0: no limit).
	UserBitrate int
	// Logger receives the server's warnings; nil discards them.
	Logger *slog.Logger
}

// Credentials are what a client puts in an RTCIceServer: the same field
// names, so a browser passes them to RTCPeerConnection as they are.
type Credentials struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
	// TTL is how many seconds the credential works from now.
	TTL int `json:"ttl"`
}

// Server is a running STUN/TURN server.
type Server struct {
	cfg    Config
	server *pionturn.Server
	port   int
	// tlsPort is the port TURN over TLS listens on, 0 when it does not.
	tlsPort int
	public  string
	quota   *allocations
	bytes   *userLimits
}

const minSecret = 32

// New listens on cfg.Addr (UDP and TCP) and serves until Close.
func New(cfg Config) (*Server, error) {
	if len(cfg.Secret) < minSecret {
		return nil, fmt.Errorf("turn: the secret is %d bytes, at least %d are needed", len(cfg.Secret), minSecret)
	}
	if cfg.Realm == "" {
		cfg.Realm = "herald"
	}
	if cfg.CredentialTTL <= 0 {
		cfg.CredentialTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("turn: addr %q: %w", cfg.Addr, err)
	}
	listenIP, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("turn: addr %q: the host must be an IP address", cfg.Addr)
	}
	public := cfg.PublicIP
	if public == "" {
		if listenIP.IsUnspecified() {
			return nil, fmt.Errorf("turn: addr %q listens on every interface: set the public IP relayed candidates carry", cfg.Addr)
		}
		public = listenIP.String()
	}
	publicIP := net.ParseIP(public)
	if publicIP == nil {
		return nil, fmt.Errorf("turn: public IP %q is not an IP address", public)
	}
	udp, tcp, err := listenBoth(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, port: tcp.Addr().(*net.TCPAddr).Port, public: public, quota: newAllocations(cfg.MaxAllocationsPerUser)}
	if cfg.UserBitrate > 0 {
		s.bytes = newUserLimits(cfg.UserBitrate)
	}
	loggers := pionlog.Factory(cfg.Logger, "turn: ")
	relay := func() pionturn.RelayAddressGenerator {
		return &limitedRelay{RelayAddressGeneratorStatic: &pionturn.RelayAddressGeneratorStatic{RelayAddress: publicIP, Address: listenIP.String()}, limits: s.bytes, quota: s.quota}
	}
	listeners := []pionturn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: relay(), PermissionHandler: s.permitted}}
	if cfg.TLS != nil && cfg.TLSAddr != "" {
		tl, err := tls.Listen("tcp", cfg.TLSAddr, cfg.TLS)
		if err != nil {
			_ = udp.Close()
			_ = tcp.Close()
			return nil, fmt.Errorf("turn: listen tls: %w", err)
		}
		// Read back, as TLSAddr may ask for port 0.
		s.tlsPort = tl.Addr().(*net.TCPAddr).Port
		listeners = append(listeners, pionturn.ListenerConfig{Listener: tl, RelayAddressGenerator: relay(), PermissionHandler: s.permitted})
	}
	s.server, err = pionturn.NewServer(pionturn.ServerConfig{
		Realm:             cfg.Realm,
		LoggerFactory:     loggers,
		AuthHandler:       pionturn.LongTermTURNRESTAuthHandler(cfg.Secret, loggers.NewLogger("auth")),
		QuotaHandler:      s.quota.admit,
		EventHandler:      pionturn.EventHandler{OnAllocationCreated: s.quota.created, OnAllocationDeleted: s.quota.deleted},
		PacketConnConfigs: []pionturn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: relay(), PermissionHandler: s.permitted}},
		ListenerConfigs:   listeners,
	})
	if err != nil {
		_ = udp.Close()
		for _, l := range listeners {
			_ = l.Listener.Close()
		}
		return nil, fmt.Errorf("turn: %w", err)
	}
	return s, nil
}

// listenBoth opens UDP and TCP on one port, so one URL host:port serves
// both. With port 0 another free port is tried when TCP finds the one UDP
// got taken.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("turn: listen udp: %w", err)
		}
		p := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if port != "0" || attempt == 10 {
			return nil, nil, fmt.Errorf("turn: listen tcp: %w", err)
		}
	}
}

// Port is the UDP and TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// TLSPort is the port TURN over TLS listens on, 0 when it does not.
func (s *Server) TLSPort() int { return s.tlsPort }

// Credentials returns credentials for user, working for the configured TTL.
// user must not be empty or contain ':'.
func (s *Server) Credentials(user string) (Credentials, error) {
	if user == "" || strings.Contains(user, ":") {
		return Credentials{}, fmt.Errorf("turn: user %q cannot be named in a credential", user)
	}
	name, password, err := pionturn.GenerateLongTermTURNRESTCredentials(s.cfg.Secret, user, s.cfg.CredentialTTL)
	if err != nil {
		return Credentials{}, fmt.Errorf("turn: %w", err)
	}
	hostPort := net.JoinHostPort(s.public, strconv.Itoa(s.port))
	urls := []string{"stun:" + hostPort, "turn:" + hostPort + "?transport=udp", "turn:" + hostPort + "?transport=tcp"}
	if s.tlsPort != 0 {
		urls = append(urls, "turns:"+net.JoinHostPort(s.public, strconv.Itoa(s.tlsPort))+"?transport=tcp")
	}
	return Credentials{URLs: urls, Username: name, Credential: password, TTL: int(s.cfg.CredentialTTL.Seconds())}, nil
}

// Allocations is how many relay allocations are open.
func (s *Server) Allocations() int { return s.server.AllocationCount() }

// Close stops serving and closes every allocation.
func (s *Server) Close() error { return s.server.Close() }

// permitted refuses relaying to the server's own neighbourhood: loopback,
// private, link-local, unspecified and multicast addresses, unless
// configured. Without it a client could use the relay to reach services
// that trust the server's network.
func (s *Server) permitted(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.AllowedPeers {
		if p.Contains(ip) {
			return true
		}
	}
	internal := ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
	if internal {
		s.cfg.Logger.Debug("turn: relay to an internal address refused", "peer", ip)
	}
	return !internal
}
