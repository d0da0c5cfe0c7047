package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
)

// startCmdServer runs an in-process dev server on the memory engine whose
// server API needs apiKey, with a namespace "closed" no client may
// subscribe to. It returns the server's URL.
func startCmdServer(t *testing.T, apiKey string) string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr, cfg.Engine, cfg.Dev, cfg.APIKey = "127.0.0.1:0", server.EngineMemory, true, apiKey
	cfg.Logger = slog.New(slog.DiscardHandler)
	closed := node.DevNamespace("closed")
	closed.Subscribe = node.AccessNobody
	cfg.Namespaces = []node.NamespaceOptions{closed}
	return servertest.Start(t, cfg).URL
}

func TestPubUsage(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"pub", "--help"}, exitOK, "Exit status"},
		{[]string{"pub"}, exitUsage, "want at least 2"},
		{[]string{"pub", "chat:x"}, exitUsage, "want at least 2"},
		{[]string{"pub", "chat:x", "1", "2"}, exitUsage, `unexpected argument "2"`},
		{[]string{"pub", "chat:x", "{nope"}, exitUsage, "not JSON"},
		{[]string{"pub", "bad channel", "1"}, exitUsage, "invalid channel"},
		{[]string{"pub", "chat:x", "@/nonexistent/file.json"}, exitUsage, "read DATA"},
		{[]string{"pub", "--bogus", "chat:x", "1"}, exitUsage, "unknown flag"},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.contains) {
			t.Errorf("herald %s: exit %d, want %d with %q in output:\n%s%s", strings.Join(c.args, " "), code, c.code, c.contains, stdout, stderr)
		}
	}
}

func TestPub(t *testing.T) {
	base := startCmdServer(t, "sekret")
	pubArgs := func(more ...string) []string {
		return append([]string{"pub", "--server", base, "--api-key", "sekret"}, more...)
	}

	code, out, errOut := runCmd(t, pubArgs("chat:x", `{ "text": "<hi>" }`)...)
	if code != exitOK || !strings.HasPrefix(out, "published to chat:x at offset 1 (epoch ") || errOut != "" {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}

	file := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(file, []byte("[1,\n 2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, pubArgs("--json", "chat:x", "@"+file)...)
	var res struct {
		Channel string `json:"channel"`
		Offset  uint64 `json:"offset"`
		Epoch   string `json:"epoch"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Channel != "chat:x" || res.Offset != 2 || res.Epoch == "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("--json: exit %d: %q", code, out)
	}

	stdin = strings.NewReader(`"from stdin"`)
	defer func() { stdin = os.Stdin }()
	if code, out, _ = runCmd(t, pubArgs("chat:x", "-")...); code != exitOK || !strings.Contains(out, "offset 3") {
		t.Fatalf("stdin: exit %d: %q", code, out)
	}
	// A negative number needs -- to not be taken for a flag.
	if code, out, _ = runCmd(t, pubArgs("chat:x", "--", "-5")...); code != exitOK || !strings.Contains(out, "offset 4") {
		t.Fatalf("negative number: exit %d: %q", code, out)
	}

	// The same idempotency key stores once.
	for range 2 {
		if code, out, _ = runCmd(t, pubArgs("--idempotency-key", "k1", "chat:x", "5")...); code != exitOK || !strings.Contains(out, "offset 5") {
			t.Fatalf("idempotent publish: exit %d: %q", code, out)
		}
	}
	if code, out, _ = runCmd(t, pubArgs("--ephemeral", "--json", "chat:x", "6")...); code != exitOK || !strings.Contains(out, `"offset":0`) {
		t.Fatalf("ephemeral: exit %d: %q", code, out)
	}

	// The stored data is what was given, compacted, not HTML-escaped.
	hist := storedData(t, base, "chat:x", res.Epoch)
	if len(hist) != 5 || string(hist[0]) != `{"text":"<hi>"}` || string(hist[1]) != `[1,2]` || string(hist[3]) != `-5` {
		t.Fatalf("history %s", hist)
	}

	t.Setenv("HERALD_SERVER", base)
	t.Setenv("HERALD_API_KEY", "wrong")
	code, _, errOut = runCmd(t, "pub", "chat:x", "1")
	if code != exitDenied || !strings.Contains(errOut, "code 101") {
		t.Fatalf("wrong key from the environment: exit %d: %q", code, errOut)
	}
	t.Setenv("HERALD_API_KEY", "sekret")
	if code, _, errOut = runCmd(t, "pub", "chat:x", "1"); code != exitOK {
		t.Fatalf("key and server from the environment: exit %d: %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, "pub", "--server", "http://127.0.0.1:1", "--timeout", "2s", "chat:x", "1"); code != exitError || errOut == "" {
		t.Fatalf("unreachable server: exit %d: %q", code, errOut)
	}
}

// storedData reads channel's stored data with a poll from its start, which
// passes data through byte for byte.
func storedData(t *testing.T, base, channel, epoch string) []json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/poll?channel="+channel+"&since="+epoch+"-0", nil)
	resp, err := httpDo(req)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Publications []struct {
			Data json.RawMessage `json:"data"`
		} `json:"publications"`
	}
	if err := json.Unmarshal(resp, &h); err != nil {
		t.Fatalf("%s: %v", resp, err)
	}
	out := make([]json.RawMessage, len(h.Publications))
	for i, p := range h.Publications {
		out[i] = p.Data
	}
	return out
}

// httpDo runs req on a client of its own, so no connection outlives it.
func httpDo(req *http.Request) ([]byte, error) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
