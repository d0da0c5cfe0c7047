package turn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "0123456789abcdef0123456789abcdef"

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func addr(s *Server) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())) }

// dial makes a TURN client reaching the server over network: "udp",
// "tcp", or "tls" (the server's TLS listener, trusted through roots).
func dial(t *testing.T, s *Server, user, password, network string, roots *x509.CertPool) *pionturn.Client {
	t.Helper()
	server := addr(s)
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	case "tls":
		server = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TLSPort()))
		c, err := tls.Dial("tcp", server, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	default:
		t.Fatalf("network %q", network)
	}
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Username:       user,
		Password:       password,
		Conn:           conn,
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

func credentials(t *testing.T, s *Server, user string) Credentials {
	t.Helper()
	c, err := s.Credentials(user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allocate gets credentials for user and a relay allocation over UDP.
func allocate(t *testing.T, s *Server, user string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	cred := credentials(t, s, user)
	c := dial(t, s, cred.Username, cred.Credential, "udp", nil)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return c, relay
}

func peer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func read(t *testing.T, c net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from
}

func TestCredentialsShape(t *testing.T) {
	s := start(t, Config{CredentialTTL: 10 * time.Minute})
	c := credentials(t, s, "alice")
	expiry, user, ok := strings.Cut(c.Username, ":")
	if !ok || user != "alice" {
		t.Fatalf("username %q, want expiry:alice", c.Username)
	}
	if at, err := strconv.ParseInt(expiry, 10, 64); err != nil || time.Until(time.Unix(at, 0)) < 9*time.Minute || time.Until(time.Unix(at, 0)) > 11*time.Minute {
		t.Errorf("expiry %q is not the Unix time ten minutes from now", expiry)
	}
	if c.TTL != 600 || c.Credential == "" {
		t.Errorf("ttl %d credential %q", c.TTL, c.Credential)
	}
	want := []string{"stun:" + addr(s), "turn:" + addr(s) + "?transport=udp", "turn:" + addr(s) + "?transport=tcp"}
	if strings.Join(c.URLs, " ") != strings.Join(want, " ") {
		t.Errorf("urls %v, want %v", c.URLs, want)
	}
	for _, bad := range []string{"", "a:b"} {
		if _, err := s.Credentials(bad); err == nil {
			t.Errorf("credentials for user %q: no error", bad)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0", Secret: "short"},
		{Addr: "localhost:0", Secret: secret},
		{Addr: "0.0.0.0:0", Secret: secret},
		{Addr: "127.0.0.1:0", Secret: secret, PublicIP: "turn.example"},
	} {
		if s, err := New(cfg); err == nil {
			_ = s.Close()
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

func TestSTUNBinding(t *testing.T) {
	s := start(t, Config{})
	c := dial(t, s, "", "", "udp", nil)
	mapped, err := c.SendBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	if ap := netip.MustParseAddrPort(mapped.String()); !ap.Addr().IsLoopback() || ap.Port() == 0 {
		t.Errorf("mapped address %v", mapped)
	}
}

// TestRelay relays a datagram each way between a TURN client and a peer,
// over UDP, TCP and TLS to the server; credentials offer TURN over TLS
// ("turns:") exactly when it is served.
func TestRelay(t *testing.T) {
	for _, network := range []string{"udp", "tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			cfg := Config{AllowedPeers: loopback}
			var roots *x509.CertPool
			if network == "tls" {
				cfg.TLSAddr = "127.0.0.1:0"
				cert := testkit.NewSelfSigned(t)
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert.Cert}, MinVersion: tls.VersionTLS12}
				roots = cert.Pool
			}
			s := start(t, cfg)
			cred := credentials(t, s, "alice")
			turns := "turns:" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TLSPort())) + "?transport=tcp"
			if offered := slices.Contains(cred.URLs, turns); offered != (network == "tls") || (network == "tls" && s.TLSPort() == 0) {
				t.Fatalf("urls %v with TLS port %d: %q offered %v, want %v", cred.URLs, s.TLSPort(), turns, offered, network == "tls")
			}
			c := dial(t, s, cred.Username, cred.Credential, network, roots)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			p := peer(t)
			if _, err := relay.WriteTo([]byte("ping"), p.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			got, from := read(t, p)
			if string(got) != "ping" || from.String() != relay.LocalAddr().String() {
				t.Fatalf("peer got %q from %v, want ping from the relay %v", got, from, relay.LocalAddr())
			}
			// Datagrams may be lost: answer until one arrives.
			answers := make(chan string, 1)
			go func() {
				buf := make([]byte, 64)
				_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _, err := relay.ReadFrom(buf)
				if err != nil {
					answers <- err.Error()
					return
				}
				answers <- string(buf[:n])
			}()
			var answer string
			testkit.WaitFor(t, 5*time.Second, "the peer's answer through the relay", func() bool {
				if _, err := p.WriteTo([]byte("pong"), from); err != nil {
					t.Fatal(err)
				}
				select {
				case answer = <-answers:
					return true
				case <-time.After(50 * time.Millisecond):
					return false
				}
			})
			if answer != "pong" {
				t.Fatalf("client got %q, want pong", answer)
			}
			if n := s.Allocations(); n != 1 {
				t.Errorf("%d allocations, want 1", n)
			}
		})
	}
}

func TestBadCredentialsRefused(t *testing.T) {
	s := start(t, Config{AllowedPeers: loopback})
	expiredUser, expiredPass, _ := pionturn.GenerateLongTermTURNRESTCredentials(secret, "alice", -time.Minute)
	otherUser, otherPass, _ := pionturn.GenerateLongTermTURNRESTCredentials(strings.Repeat("x", 32), "alice", time.Hour)
	good := credentials(t, s, "alice")
	for _, bad := range []struct{ what, user, pass string }{
		{"expired", expiredUser, expiredPass},
		{"signed with another secret", otherUser, otherPass},
		{"wrong password", good.Username, good.Credential + "x"},
		{"a static name", "alice", good.Credential},
		{"none", "", ""},
	} {
		c := dial(t, s, bad.user, bad.pass, "udp", nil)
		if relay, err := c.Allocate(); err == nil {
			_ = relay.Close()
			t.Errorf("%s credentials: allocated", bad.what)
		}
	}
	if n := s.Allocations(); n != 0 {
		t.Errorf("%d allocations after refusals", n)
	}
}

func TestPermissionFilter(t *testing.T) {
	s := &Server{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fe80::1", "fc00::1", "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1"} {
		if s.permitted(nil, net.ParseIP(ip)) {
			t.Errorf("relay to %s permitted", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "2001:4860:4860::8888", "93.184.216.34"} {
		if !s.permitted(nil, net.ParseIP(ip)) {
			t.Errorf("relay to %s refused", ip)
		}
	}
	s.cfg.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if !s.permitted(nil, net.ParseIP("10.1.2.3")) || s.permitted(nil, net.ParseIP("192.168.1.1")) {
		t.Error("allowed_peers not applied exactly")
	}
}

// TestRelayToLoopbackRefused shows the filter at work on a real allocation:
// without configuration, the relay will not reach the server's own host.
func TestRelayToLoopbackRefused(t *testing.T) {
	s := start(t, Config{})
	c, relay := allocate(t, s, "mallory")
	p := peer(t)
	if err := c.CreatePermission(p.LocalAddr()); err == nil {
		t.Fatal("permission to a loopback peer granted")
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("8.8.8.8"), Port: 53}); err != nil {
		t.Fatalf("permission to a public peer: %v", err)
	}
	_, _ = relay.WriteTo([]byte("knock"), p.LocalAddr())
	_ = p.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var timeout net.Error
	if n, _, err := p.ReadFrom(make([]byte, 64)); !errors.As(err, &timeout) || !timeout.Timeout() {
		t.Fatalf("the loopback peer received %d bytes (%v)", n, err)
	}
}
