package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/turn"
)

// TURN server modes (TURNConfig.Enabled).
const (
	turnAuto = "auto"
	turnOn   = "on"
	turnOff  = "off"
)

// TURNConfig configures the embedded STUN/TURN server that relays WebRTC
// peers whose networks keep them from reaching each other directly.
type TURNConfig struct {
	// Enabled is "auto" (on in dev mode, off otherwise), "on" or "off". In
	// auto mode a busy port is a warning, in on mode an error.
	Enabled string `koanf:"enabled"`
	// Addr is the IP:port the server listens on, UDP and TCP alike.
	Addr string `koanf:"addr"`
	// PublicIP is the address peers reach the relay at, put in relayed
	// candidates and credential URLs; empty means Addr's host.
	PublicIP string `koanf:"public_ip"`
	// TLSAddr also serves TURN over TLS there, with tls.cert_file.
	TLSAddr string `koanf:"tls_addr"`
	// Secret signs the short-lived credentials (the TURN REST API
	// convention). Empty: a random one per process, which works because
	// each node's credentials name that node's own TURN address.
	Secret string `koanf:"secret"`
	// Realm names the server in TURN's authentication.
	Realm string `koanf:"realm"`
	// CredentialTTL is how long handed-out credentials work.
	CredentialTTL time.Duration `koanf:"credential_ttl"`
	// AllowedPeers are loopback, private or link-local prefixes the relay
	// may reach all the same; others of those kinds are refused. Dev mode
	// allows loopback and private networks when the list is empty.
	AllowedPeers []string `koanf:"allowed_peers"`
	// MaxAllocationsPerUser bounds a user's relay allocations (0: none).
	MaxAllocationsPerUser int `koanf:"max_allocations_per_user"`
	// UserBitrate bounds the bytes per second one user's allocations
	// relay, both directions together (0: no limit).
	UserBitrate int `koanf:"user_bitrate"`
}

// devPeers are the relay destinations dev mode allows when none are
// configured: the machine itself and the local network, where a developer's
// peers are.
var devPeers = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

func defaultTURN() TURNConfig {
	return TURNConfig{
		Enabled:               turnAuto,
		Addr:                  "127.0.0.1:3478",
		Realm:                 "herald",
		CredentialTTL:         time.Hour,
		AllowedPeers:          []string{},
		MaxAllocationsPerUser: 10,
		UserBitrate:           4 << 20,
	}
}

// wanted reports whether the server should run, given dev mode.
func (c *TURNConfig) wanted(dev bool) bool {
	return c.Enabled == turnOn || (c.Enabled == turnAuto && dev)
}

// validate appends an error for every invalid option to bad.
func (c *TURNConfig) validate(bad func(key, format string, args ...any), tlsConfigured bool) {
	switch c.Enabled {
	case turnAuto, turnOn, turnOff:
	default:
		bad("turn.enabled", "%q is not %q, %q or %q", c.Enabled, turnAuto, turnOn, turnOff)
	}
	if host, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("turn.addr", "%q is not IP:port", c.Addr)
	} else if ip, err := netip.ParseAddr(host); err != nil {
		bad("turn.addr", "%q: the host must be an IP address", c.Addr)
	} else if ip.IsUnspecified() && c.PublicIP == "" {
		bad("turn.public_ip", "required when turn.addr listens on every interface: it is the address peers reach the relay at")
	}
	if c.PublicIP != "" {
		if _, err := netip.ParseAddr(c.PublicIP); err != nil {
			bad("turn.public_ip", "%q is not an IP address", c.PublicIP)
		}
	}
	if c.TLSAddr != "" && !tlsConfigured {
		bad("turn.tls_addr", "needs tls.cert_file and tls.key_file")
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		bad("turn.secret", "must be at least 32 bytes, got %d", len(c.Secret))
	}
	if c.CredentialTTL <= 0 {
		bad("turn.credential_ttl", "must be a positive duration, got %v", c.CredentialTTL)
	}
	if _, err := parsePrefixes(c.AllowedPeers); err != nil {
		bad("turn.allowed_peers", "%v", err)
	}
	if c.MaxAllocationsPerUser < 0 {
		bad("turn.max_allocations_per_user", "must not be negative, got %d", c.MaxAllocationsPerUser)
	}
	if c.UserBitrate < 0 {
		bad("turn.user_bitrate", "must not be negative, got %d", c.UserBitrate)
	}
}

// startTURN starts the STUN/TURN server when the configuration wants one.
// In auto mode a failure is logged and the server runs without it.
func (s *Server) startTURN() error {
	c := s.cfg.TURN
	if !c.wanted(s.cfg.Dev) {
		return nil
	}
	secret := c.Secret
	if secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = base64.RawStdEncoding.EncodeToString(b)
	}
	peers := c.AllowedPeers
	if len(peers) == 0 && s.cfg.Dev {
		peers = devPeers
	}
	allowed, _ := parsePrefixes(peers) // Validate checked them
	cfg := turn.Config{
		Addr:                  c.Addr,
		PublicIP:              c.PublicIP,
		TLSAddr:               c.TLSAddr,
		TLS:                   s.http.TLSConfig,
		Secret:                secret,
		Realm:                 c.Realm,
		CredentialTTL:         c.CredentialTTL,
		AllowedPeers:          allowed,
		MaxAllocationsPerUser: c.MaxAllocationsPerUser,
		UserBitrate:           c.UserBitrate,
		Logger:                s.log.With("component", "turn"),
	}
	t, err := turn.New(cfg)
	if err != nil {
		if c.Enabled == turnOn {
			return fmt.Errorf("server: %w", err)
		}
		s.log.Warn("running without STUN/TURN", "err", err)
		return nil
	}
	s.turn.Store(t)
	attrs := []any{"addr", net.JoinHostPort(hostOf(c.Addr), fmt.Sprint(t.Port())), "udp", true, "tcp", true}
	if t.TLSPort() != 0 {
		attrs = append(attrs, "tls_addr", net.JoinHostPort(hostOf(c.TLSAddr), fmt.Sprint(t.TLSPort())))
	}
	s.log.Info("turn listening", attrs...)
	return nil
}

// stopTURN closes the STUN/TURN server and its allocations, if it runs.
func (s *Server) stopTURN() error {
	if t := s.turn.Swap(nil); t != nil {
		return t.Close()
	}
	return nil
}

// TURNPort is the port the STUN/TURN server listens on, 0 when it does not
// run.
func (s *Server) TURNPort() int {
	if t := s.turn.Load(); t != nil {
		return t.Port()
	}
	return 0
}

// iceServers hands a client the TURN server with credentials for user, or
// no server when none runs.
func (s *Server) iceServers(user string) (protocol.ICEServersResult, error) {
	t := s.turn.Load()
	if t == nil {
		return protocol.ICEServersResult{ICEServers: []protocol.ICEServer{}}, nil
	}
	c, err := t.Credentials(user)
	if err != nil {
		return protocol.ICEServersResult{}, protocol.ErrNotAvailable.With("turn credentials: %v", err)
	}
	return protocol.ICEServersResult{
		ICEServers: []protocol.ICEServer{{URLs: c.URLs, Username: c.Username, Credential: c.Credential}},
		TTL:        c.TTL,
	}, nil
}

func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}
