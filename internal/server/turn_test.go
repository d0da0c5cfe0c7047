package server

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
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
			conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1500)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no STUN answer: %v", err)
			}
			answer := &stun.Message{Raw: buf[:n]}
			if err := answer.Decode(); err != nil || answer.Type != stun.BindingSuccess {
				t.Fatalf("STUN answer %v, %v", answer, err)
			}
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
