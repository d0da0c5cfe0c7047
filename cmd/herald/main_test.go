package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	goleak.VerifyTestMain(m, ignoreNBIO)
}

// ignoreNBIO skips the task pools of nbio's package-level DefaultEngine,
// which start at init and live as long as the process.
var ignoreNBIO = goleak.IgnoreTopFunction("github.com/lesismal/nbio/taskpool.New.func3")

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"help"}, exitOK, "genconfig"},
		{[]string{"--help"}, exitOK, "serve"},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"serve", "--help"}, exitOK, "HERALD_API_KEY"},
		{[]string{"serve", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"serve", "stray"}, exitUsage, `unexpected argument "stray"`},
		{[]string{"serve", "--engine", "cassandra"}, exitUsage, "engine:"},
		{[]string{"serve", "--engine", "redis"}, exitUsage, "redis_url:"},
		{[]string{"serve", "--config", "/nonexistent/herald.yaml"}, exitUsage, "herald.yaml"},
		{[]string{"genconfig", "--help"}, exitOK, "--format"},
		{[]string{"genconfig", "--format", "ini"}, exitUsage, `unknown format "ini"`},
	}
	for _, c := range cases {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.contains) {
			t.Errorf("herald %s: exit %d, want %d with %q in output:\n%s%s", strings.Join(c.args, " "), code, c.code, c.contains, stdout, stderr)
		}
		if c.code == exitOK && stderr != "" {
			t.Errorf("herald %s: wrote to stderr: %s", strings.Join(c.args, " "), stderr)
		}
	}
}

// serve --help shows the address and engine a bare "herald serve" uses.
func TestServeHelpShowsDefaults(t *testing.T) {
	code, stdout, stderr := runCmd(t, "serve", "--help")
	if code != exitOK {
		t.Fatalf("serve --help: exit %d: %s", code, stderr)
	}
	for flag, def := range map[string]string{"--addr": `(default "127.0.0.1:8000")`, "--engine": `(default "durable")`} {
		line := ""
		for l := range strings.Lines(stdout) {
			if strings.HasPrefix(strings.TrimSpace(l), flag+" ") {
				line = l
			}
		}
		if !strings.Contains(line, def) {
			t.Errorf("serve --help line of %s is %q, want it to show %s", flag, line, def)
		}
	}
}

// The file genconfig prints is one that serve loads, and it holds the defaults.
func TestGenconfigRoundTrip(t *testing.T) {
	for _, format := range []string{"", "yaml", "toml", "json"} {
		args := []string{"genconfig"}
		ext := "yaml"
		if format != "" {
			args = append(args, "--format", format)
			ext = format
		}
		code, out, stderr := runCmd(t, args...)
		if code != exitOK {
			t.Fatalf("genconfig %s: exit %d: %s", format, code, stderr)
		}
		path := filepath.Join(t.TempDir(), "herald."+ext)
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := server.Load(path, nil)
		if err != nil {
			t.Fatalf("genconfig %s output does not load: %v", format, err)
		}
		if !reflect.DeepEqual(cfg, server.Defaults()) {
			t.Errorf("genconfig %s loads as %+v", format, cfg)
		}
	}
}

var listeningAddr = regexp.MustCompile(`msg="herald listening" addr=(\S+)`)

func get(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--engine", "memory", "--addr", "127.0.0.1:0", "--turn-addr", "127.0.0.1:0", "--log-level", "debug"}, io.Discard, &stderr)
	}()
	var addr string
	testkit.WaitFor(t, 10*time.Second, "the listening log line", func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before listening:\n%s", code, stderr.String())
		default:
		}
		if m := listeningAddr.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	client := &http.Client{Transport: &http.Transport{}}
	if code := get(t, client, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	res, err := client.Post("http://"+addr+"/api/publish", "application/json", strings.NewReader(`{"channel":"chat:demo","data":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("dev-mode API publish without a key: %d", res.StatusCode)
	}
	client.CloseIdleConnections()
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("serve exited with %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return within 15s of cancel")
	}
	if !strings.Contains(stderr.String(), "shut down cleanly") {
		t.Errorf("no clean shutdown line:\n%s", stderr.String())
	}
	goleak.VerifyNone(t, ignoreNBIO)
}

// TestSignal runs the built binary and stops it with SIGTERM, as a service
// manager would: it must exit 0 after a clean shutdown.
func TestSignal(t *testing.T) {
	h := testkit.StartHerald(t, testkit.BuildHerald(t), "--engine", "durable", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	if code := get(t, client, h.URL("/healthz")); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	if err := h.Stop(t, 20*time.Second); err != nil {
		t.Fatalf("herald after SIGTERM: %v\n%s", err, h.Log())
	}
	if !strings.Contains(h.Log(), "shut down cleanly") {
		t.Errorf("no clean shutdown line:\n%s", h.Log())
	}
	// Everything the server writes is structured: no library prints its own
	// lines to stdout.
	for _, line := range strings.Split(strings.TrimSpace(h.Log()), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("unstructured output line: %q", line)
		}
	}
}
