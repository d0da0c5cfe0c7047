package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestSubUsage(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"sub", "--help"}, exitOK, "--since POSITION"},
		{[]string{"sub"}, exitUsage, "want at least 1"},
		{[]string{"sub", "--transport", "pigeon", "a"}, exitUsage, "--transport"},
		{[]string{"sub", "bad channel"}, exitUsage, "invalid channel"},
		{[]string{"sub", "--since", "x-1", "a", "b"}, exitUsage, "--since"},
		{[]string{"sub", "--count", "-1", "a"}, exitUsage, "--count"},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.contains) {
			t.Errorf("herald %s: exit %d, want %d with %q in output:\n%s%s", strings.Join(c.args, " "), code, c.code, c.contains, stdout, stderr)
		}
	}
}

// runningSub is a herald sub running in this process.
type runningSub struct {
	stdout, stderr testkit.LockedBuffer
	done           chan int
	cancel         context.CancelFunc
}

func startSub(t *testing.T, args ...string) *runningSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningSub{done: make(chan int, 1), cancel: cancel}
	go func() { s.done <- run(ctx, append([]string{"sub"}, args...), &s.stdout, &s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("herald sub did not stop")
		}
	})
	return s
}

func (s *runningSub) waitStderr(t *testing.T, what string) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%q on stderr", what), func() bool { return strings.Contains(s.stderr.String(), what) })
}

func (s *runningSub) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("herald sub did not exit; stderr:\n%s", s.stderr.String())
		return -1
	}
}

type printed struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Time    string          `json:"time"`
}

func parseLines(t *testing.T, out string) []printed {
	t.Helper()
	var ps []printed
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var p printed
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, p.Time); err != nil {
			t.Fatalf("time %q: %v", p.Time, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// pub → sub round trips on every transport, in process.
func TestSub(t *testing.T) {
	base := startCmdServer(t, "k")
	for _, tr := range []string{"websocket", "sse", "longpoll", "shortpoll", "webrtc"} {
		t.Run(tr, func(t *testing.T) {
			channel := "sub:" + tr
			s := startSub(t, "--server", base, "--transport", tr, "--count", "3", channel)
			s.waitStderr(t, "subscribed to "+channel)
			for i := range 3 {
				if code, _, errOut := runCmd(t, "pub", "--server", base, "--api-key", "k", channel, fmt.Sprintf(`{"i":%d}`, i)); code != exitOK {
					t.Fatalf("pub: %d %s", code, errOut)
				}
			}
			if code := s.exit(t); code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, s.stderr.String())
			}
			ps := parseLines(t, s.stdout.String())
			if len(ps) != 3 {
				t.Fatalf("%d lines:\n%s", len(ps), s.stdout.String())
			}
			for i, p := range ps {
				if p.Channel != channel || p.Offset != uint64(i+1) || p.Epoch == "" || string(p.Data) != fmt.Sprintf(`{"i":%d}`, i) {
					t.Fatalf("line %d: %+v", i, p)
				}
			}
			if want := fmt.Sprintf("resume with --since %s-3", ps[0].Epoch); !strings.Contains(s.stderr.String(), want) {
				t.Fatalf("no %q on stderr:\n%s", want, s.stderr.String())
			}
		})
	}
}

// --since resumes from a saved position, on several channels at once.
func TestSubSince(t *testing.T) {
	base := startCmdServer(t, "k")
	var epochs []string
	for _, ch := range []string{"since:b", "since:a"} {
		for i := range 4 {
			_, out, _ := runCmd(t, "pub", "--json", "--server", base, "--api-key", "k", ch, fmt.Sprint(i))
			var r struct{ Epoch string }
			_ = json.Unmarshal([]byte(out), &r)
			if i == 0 {
				epochs = append(epochs, r.Epoch)
			}
		}
	}
	// since:a at offset 3, since:b at offset 1: sorted channel order.
	since := fmt.Sprintf("%s-3.%s-1", epochs[1], epochs[0])
	s := startSub(t, "--server", base, "--transport", "sse", "--since", since, "--count", "4", "since:b", "since:a")
	if code := s.exit(t); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr.String())
	}
	got := map[string][]uint64{}
	for _, p := range parseLines(t, s.stdout.String()) {
		got[p.Channel] = append(got[p.Channel], p.Offset)
	}
	if fmt.Sprint(got["since:a"]) != "[4]" || fmt.Sprint(got["since:b"]) != "[2 3 4]" {
		t.Fatalf("resumed %v", got)
	}
	if !strings.Contains(s.stderr.String(), "since:a resumed from") || !strings.Contains(s.stderr.String(), ": recovered") {
		t.Fatalf("no recovery notice:\n%s", s.stderr.String())
	}
}

func TestSubRefusedAndInterrupted(t *testing.T) {
	base := startCmdServer(t, "k")
	s := startSub(t, "--server", base, "closed:x")
	if code := s.exit(t); code != exitDenied || !strings.Contains(s.stderr.String(), "code 103") {
		t.Fatalf("refused subscription: exit %d:\n%s", code, s.stderr.String())
	}
	s = startSub(t, "--server", base, "open:x")
	s.waitStderr(t, "subscribed to open:x")
	s.cancel()
	if code := s.exit(t); code != exitOK {
		t.Fatalf("interrupted: exit %d:\n%s", code, s.stderr.String())
	}
}

// --token, else HERALD_TOKEN, authenticates herald sub; the publications of
// the token's server-side channels are printed too. Without a token, a
// server that refuses anonymous clients makes it exit 3.
func TestSubToken(t *testing.T) {
	const secret = "herald-sub-test-secret-0123456789abcdef"
	cfg := server.Defaults()
	cfg.Addr, cfg.Engine, cfg.APIKey = "127.0.0.1:0", server.EngineMemory, "k"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Auth.HMACSecret = secret
	ns := node.DevNamespace("auth")
	ns.Subscribe = node.AccessAuthenticated
	cfg.Namespaces = []node.NamespaceOptions{ns}
	base := servertest.Start(t, cfg).URL
	tok, err := auth.Mint(auth.MintOptions{Secret: []byte(secret), UserID: "alice", TTL: time.Hour, Channels: []string{"auth:srv"}})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(channel, data string) {
		t.Helper()
		if code, _, errOut := runCmd(t, "pub", "--server", base, "--api-key", "k", channel, data); code != exitOK {
			t.Fatalf("pub: %d %s", code, errOut)
		}
	}

	t.Setenv("HERALD_TOKEN", "")
	s := startSub(t, "--server", base, "auth:x")
	if code := s.exit(t); code != exitDenied || !strings.Contains(s.stderr.String(), "unauthorized") {
		t.Fatalf("without a token: exit %d:\n%s", code, s.stderr.String())
	}

	s = startSub(t, "--server", base, "--token", tok, "--count", "2", "auth:x")
	s.waitStderr(t, "subscribed to auth:x")
	s.waitStderr(t, "subscribed to auth:srv")
	publish("auth:x", "1")
	publish("auth:srv", "2")
	if code := s.exit(t); code != exitOK {
		t.Fatalf("--token: exit %d:\n%s", code, s.stderr.String())
	}
	got := map[string]string{}
	for _, p := range parseLines(t, s.stdout.String()) {
		got[p.Channel] = string(p.Data)
	}
	if got["auth:x"] != "1" || got["auth:srv"] != "2" {
		t.Fatalf("printed %v", got)
	}

	t.Setenv("HERALD_TOKEN", tok)
	s = startSub(t, "--server", base, "--count", "1", "auth:y")
	s.waitStderr(t, "subscribed to auth:y")
	publish("auth:y", "3")
	if code := s.exit(t); code != exitOK || !strings.Contains(s.stdout.String(), `"channel":"auth:y"`) {
		t.Fatalf("HERALD_TOKEN: exit %d:\n%s%s", code, s.stdout.String(), s.stderr.String())
	}
}

// The built binary: herald sub in one process receives what herald pub in
// another publishes, then exits 0 after --count.
func TestPubSubBinary(t *testing.T) {
	bin := testkit.BuildHerald(t)
	h := testkit.StartHerald(t, bin, "--dev", "--engine", "memory", "--addr", "127.0.0.1:0")
	sub := exec.Command(bin, "sub", "--count", "2", "chat:bin")
	sub.Env = append(sub.Environ(), "HERALD_SERVER="+h.URL(""))
	var stdout strings.Builder
	sub.Stdout = &stdout
	stderr, err := sub.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Process.Kill() }()
	subscribed, readDone := make(chan struct{}), make(chan struct{})
	var log strings.Builder
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "subscribed to chat:bin") {
				close(subscribed)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("herald sub did not subscribe")
	}
	for _, data := range []string{`{"n":1}`, `"two"`} {
		out, err := exec.Command(bin, "pub", "--server", h.URL(""), "chat:bin", data).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "published to chat:bin at offset") {
			t.Fatalf("herald pub: %v: %s", err, out)
		}
	}
	// Its stderr ends when it exits; Wait must come after the last read.
	select {
	case <-readDone:
	case <-time.After(20 * time.Second):
		t.Fatal("herald sub did not exit after --count")
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("herald sub: %v\n%s", err, log.String())
	}
	ps := parseLines(t, stdout.String())
	if len(ps) != 2 || string(ps[0].Data) != `{"n":1}` || string(ps[1].Data) != `"two"` || ps[1].Offset != 2 {
		t.Fatalf("herald sub printed:\n%s", stdout.String())
	}
}
