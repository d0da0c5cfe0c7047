package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// Dev mode runs the STUN/TURN server by itself ("auto"); without dev mode
// it runs only when turned on, and "off" keeps it off in dev mode too.
func TestTURNRunsWhereConfigured(t *testing.T) {
	for _, c := range []struct {
		name    string
		dev     bool
		enabled string
		want    bool
	}{
		{"dev, auto", true, turnAuto, true},
		{"no dev, auto", false, turnAuto, false},
		{"no dev, on", false, turnOn, true},
		{"dev, off", true, turnOff, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Dev, cfg.TURN.Enabled = c.dev, c.enabled
			r := start(t, cfg)
			port := r.srv.TURNPort()
			if (port != 0) != c.want {
				t.Fatalf("TURN port %d, want running: %v", port, c.want)
			}
			res, err := r.srv.iceServers("alice")
			if err != nil {
				t.Fatal(err)
			}
			if !c.want {
				if len(res.ICEServers) != 0 {
					t.Fatalf("ice servers %+v without a TURN server", res)
				}
				return
			}
			// A STUN binding request over UDP gets an answer: the port is served.
			stunBinding(t, "udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if len(res.ICEServers) != 1 || res.TTL != int(cfg.TURN.CredentialTTL.Seconds()) {
				t.Fatalf("ice servers %+v", res)
			}
		})
	}
}

// In auto mode a TURN port that is taken is a warning; the server runs on.
// In on mode it is an error.
func TestTURNBusyPort(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig()
	cfg.Dev = true
	cfg.TURN.Addr = busy.LocalAddr().String()
	r := start(t, cfg)
	if r.srv.TURNPort() != 0 {
		t.Fatalf("TURN runs on a busy port")
	}
	cfg.TURN.Enabled = turnOn
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(t.Context()); err == nil {
		t.Fatal("Run succeeded with turn.enabled on and its port taken")
	}
}

// stunBinding sends a STUN binding request to addr over network ("udp" or
// "tcp") and fails the test unless a binding success answers it.
func stunBinding(t *testing.T, network, addr string) {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, addr, err)
	}
	defer conn.Close()
	stunExchange(t, conn, network)
}

// stunExchange sends a STUN binding request on conn and fails the test
// unless a binding success answers it.
func stunExchange(t *testing.T, conn net.Conn, over string) {
	t.Helper()
	if _, err := conn.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no STUN answer over %s: %v", over, err)
	}
	answer := &stun.Message{Raw: buf[:n]}
	if err := answer.Decode(); err != nil || answer.Type != stun.BindingSuccess {
		t.Fatalf("STUN answer over %s: %v, %v", over, answer, err)
	}
}

// The default TURN address is the standard port on loopback, and the
// server serves its port over UDP and TCP alike. (The default port itself
// is not bound here: servers side by side in tests must not contend for it.)
func TestTURNDefaultAddr(t *testing.T) {
	if got := Defaults().TURN.Addr; got != "127.0.0.1:3478" {
		t.Fatalf("default turn.addr %q, want 127.0.0.1:3478", got)
	}
	cfg := testConfig()
	cfg.TURN.Enabled = turnOn
	cfg.TURN.Addr = net.JoinHostPort(hostOf(Defaults().TURN.Addr), "0")
	r := start(t, cfg)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.srv.TURNPort()))
	stunBinding(t, "udp", addr)
	stunBinding(t, "tcp", addr)
}

// An authenticated user's TURN credentials are named "<expiry>:<user>"
// after the token's subject, an anonymous client's after its own client
// id; the TURN server accepts them.
func TestTURNCredentialsNameTheUser(t *testing.T) {
	cfg := authConfig()
	cfg.AllowAnonymous = true
	cfg.TURN.Enabled = turnOn
	cfg.TURN.CredentialTTL = 10 * time.Minute
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// iceServers connects with token over a WebSocket and asks for ICE
	// servers; it returns the TURN server and the client's id.
	iceServers := func(token string) (protocol.ICEServer, string) {
		t.Helper()
		c, _, err := cws.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		call := func(cmd string, result any) {
			t.Helper()
			if err := c.Write(ctx, cws.MessageText, []byte(cmd)); err != nil {
				t.Fatal(err)
			}
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Result json.RawMessage
				Error  *protocol.Error
			}
			if err := json.Unmarshal(b, &rep); err != nil || rep.Error != nil {
				t.Fatalf("reply %s: %v", b, err)
			}
			if err := json.Unmarshal(rep.Result, result); err != nil {
				t.Fatal(err)
			}
		}
		var connected protocol.ConnectResult
		call(`{"id":1,"method":"connect","params":{"token":"`+token+`"}}`, &connected)
		var res protocol.ICEServersResult
		call(`{"id":2,"method":"ice_servers"}`, &res)
		if len(res.ICEServers) != 1 {
			t.Fatalf("ice servers %+v", res)
		}
		return res.ICEServers[0], connected.Client
	}
	named := regexp.MustCompile(`^([0-9]+):(.+)$`)
	check := func(who string, s protocol.ICEServer, want string) {
		t.Helper()
		m := named.FindStringSubmatch(s.Username)
		if m == nil || m[2] != want {
			t.Fatalf("%s: username %q, want <expiry>:%s", who, s.Username, want)
		}
		expiry, _ := strconv.ParseInt(m[1], 10, 64)
		if left := time.Until(time.Unix(expiry, 0)); left < 9*time.Minute || left > 11*time.Minute {
			t.Errorf("%s: credentials expire in %v, want the configured 10m", who, left)
		}
		// The TURN server takes them for an allocation.
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.srv.TURNPort()))
		c, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr, Username: s.Username, Password: s.Credential, Conn: conn, RTO: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		relay, err := c.Allocate()
		if err != nil {
			t.Fatalf("%s: allocation with the credentials handed out: %v", who, err)
		}
		_ = relay.Close()
	}
	bob, _ := iceServers(mint(t, auth.MintOptions{UserID: "bob", TTL: time.Hour}))
	check("bob", bob, "bob")
	anon, client := iceServers("")
	check("anonymous", anon, "anonymous-"+client)
}

// Outside dev mode, a TURN server with no allowed peers configured will
// not relay to the server's own host; dev mode allows loopback.
func TestTURNLoopbackPeerRefusedOutsideDev(t *testing.T) {
	for _, dev := range []bool{false, true} {
		t.Run(map[bool]string{false: "production", true: "dev"}[dev], func(t *testing.T) {
			cfg := testConfig()
			cfg.Dev = dev
			cfg.TURN.Enabled = turnOn
			r := start(t, cfg)
			creds, err := r.srv.iceServers("mallory")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.srv.TURNPort()))
			ice := creds.ICEServers[0]
			c, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr, Username: ice.Username, Password: ice.Credential, Conn: conn, RTO: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			relay, err := c.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			err = c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
			if granted := err == nil; granted != dev {
				t.Fatalf("permission to 127.0.0.1 granted: %v (%v), want %v", granted, err, dev)
			}
			if err != nil && !strings.Contains(err.Error(), "403") {
				t.Errorf("permission refused with %v, want TURN error 403 (Forbidden)", err)
			}
		})
	}
}

// With tls.cert_file and turn.tls_addr, the TURN server also speaks TLS
// with the server's certificate, and credentials offer it as "turns:" on
// the port it got.
func TestTURNOverTLS(t *testing.T) {
	self := testkit.NewSelfSigned(t)
	cert, key := self.WriteFiles(t)
	roots := self.Pool
	cfg := testConfig()
	cfg.TLS.CertFile, cfg.TLS.KeyFile = cert, key
	cfg.TURN.Enabled = turnOn
	cfg.TURN.TLSAddr = "127.0.0.1:0"
	r := start(t, cfg)
	res, err := r.srv.iceServers("alice")
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	for _, u := range res.ICEServers[0].URLs {
		if rest, ok := strings.CutPrefix(u, "turns:"); ok {
			addr = strings.TrimSuffix(rest, "?transport=tcp")
		}
	}
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("urls %v: want turns:127.0.0.1:<port>?transport=tcp", res.ICEServers[0].URLs)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s with the server's certificate: %v", addr, err)
	}
	defer conn.Close()
	stunExchange(t, conn, "tls")
}
