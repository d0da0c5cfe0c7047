package server

import (
	"net"
	"net/netip"

	"github.com/heraldrt/herald/internal/transport/webrtc"
)

// WebRTCConfig configures the data-channel transport: clients that open a
// WebRTC peer connection to the server itself and speak the Herald
// protocol over it (POST /webrtc).
type WebRTCConfig struct {
	// DataChannels serves the transport.
	DataChannels bool `koanf:"data_channels"`
	// PublicIPs are the addresses clients reach this node at, when it sits
	// behind a 1:1 NAT; they replace its interfaces' addresses in answers.
	PublicIPs []string `koanf:"public_ips"`
	// UDPPortMin and UDPPortMax bound the UDP ports peer connections use,
	// for firewalls; both 0: any ephemeral port.
	UDPPortMin int `koanf:"udp_port_min"`
	UDPPortMax int `koanf:"udp_port_max"`
}

func defaultWebRTC() WebRTCConfig {
	return WebRTCConfig{DataChannels: true, PublicIPs: []string{}}
}

func (c *WebRTCConfig) validate(bad func(key, format string, args ...any)) {
	for _, ip := range c.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			bad("webrtc.public_ips", "%q is not an IP address", ip)
		}
	}
	if c.UDPPortMin < 0 || c.UDPPortMax > 65535 || c.UDPPortMin > c.UDPPortMax || (c.UDPPortMin == 0) != (c.UDPPortMax == 0) {
		bad("webrtc.udp_port_min", "udp_port_min %d and udp_port_max %d must both be 0 or form a range within 1-65535", c.UDPPortMin, c.UDPPortMax)
	}
}

// newWebRTC builds the data-channel transport, or returns nil when the
// configuration turns it off.
func (s *Server) newWebRTC() (*webrtc.Server, error) {
	c := s.cfg.WebRTC
	if !c.DataChannels {
		return nil, nil
	}
	return webrtc.New(webrtc.Config{
		Node:           s.node,
		Logger:         s.log.With("transport", "webrtc"),
		MaxMessageSize: s.cfg.MaxMessageSize,
		WriteTimeout:   s.cfg.WriteTimeout,
		// Clients that reach the server on loopback need a loopback
		// candidate to reach its peer connections too.
		IncludeLoopback: s.cfg.Dev || listensOnLoopback(s.cfg.Addr),
		PublicIPs:       c.PublicIPs,
		UDPPortMin:      uint16(c.UDPPortMin),
		UDPPortMax:      uint16(c.UDPPortMax),
	})
}

// listensOnLoopback reports whether addr (host:port) is a loopback address
// or a name for one.
func listensOnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
