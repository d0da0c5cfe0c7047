package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

// TestHangupReloads runs the built binary with a config file, changes the
// file and sends SIGHUP: the new API key must apply at once, and a broken
// file must be refused with the running configuration kept.
func TestHangupReloads(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "herald.yaml")
	write := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const base = "engine: memory\naddr: 127.0.0.1:0\nnamespaces:\n  - name: n\n    history_size: 10\n    history_ttl: 1h\n"
	write(base + "api_key: first\n")
	h := testkit.StartHerald(t, testkit.BuildHerald(t), "--config", file)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	publish := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, h.URL("/api/publish"), strings.NewReader(`{"channel":"n:a","data":1}`))
		req.Header.Set("Authorization", "apikey "+key)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	hangup := func(wantLine string, count int) {
		t.Helper()
		if err := syscall.Kill(h.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "the reload to be logged", func() bool {
			return strings.Count(h.Log(), wantLine) >= count
		})
	}
	if s := publish("first"); s != http.StatusOK {
		t.Fatalf("publish with the first key: %d", s)
	}

	write(base + "api_key: second\nping_interval: 20s\n")
	hangup("configuration reloaded", 1)
	if s := publish("first"); s != http.StatusUnauthorized {
		t.Fatalf("publish with the replaced key: %d, want 401", s)
	}
	if s := publish("second"); s != http.StatusOK {
		t.Fatalf("publish with the reloaded key: %d", s)
	}
	if !strings.Contains(h.Log(), "configuration changed, needs restart") || !strings.Contains(h.Log(), "ping_interval") {
		t.Errorf("no restart warning for ping_interval:\n%s", h.Log())
	}

	write(base + "api_key: third\nmax_publication_size: -5\n")
	hangup("configuration not reloaded", 1)
	if s := publish("second"); s != http.StatusOK {
		t.Fatalf("publish with the running key after a refused reload: %d", s)
	}
	if err := h.Stop(t, 20*time.Second); err != nil {
		t.Fatalf("herald after SIGTERM: %v\n%s", err, h.Log())
	}
}
