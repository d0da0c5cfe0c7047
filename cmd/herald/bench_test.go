package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/bench"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestBenchUsage(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"bench"}, exitUsage, "Scenarios:"},
		{[]string{"bench", "--help"}, exitOK, "fanout"},
		{[]string{"bench", "bogus"}, exitUsage, `unknown scenario "bogus"`},
		{[]string{"bench", "fanout", "--help"}, exitOK, "--subscribers"},
		{[]string{"bench", "idle", "--help"}, exitOK, "--server-pid"},
		{[]string{"bench", "churn", "--help"}, exitOK, "--churn-rate"},
		{[]string{"bench", "idle", "--rate", "5"}, exitUsage, "unknown flag: --rate"},
		{[]string{"bench", "idle", "--server", "http://10.1.2.3:8000"}, exitError, "loopback"},
		{[]string{"bench", "spread", "--transport", "smoke"}, exitError, "unknown transport"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.contains) {
			t.Errorf("herald %s: exit %d, want %d with %q in output:\n%s%s", strings.Join(c.args, " "), code, c.code, c.contains, stdout, stderr)
		}
	}
}

// A run spread over two worker processes (the built binary re-executing
// itself) reports the totals of both.
func TestBenchWorkerProcesses(t *testing.T) {
	bin := testkit.BuildHerald(t)
	config := filepath.Join(t.TempDir(), "herald.yaml")
	err := os.WriteFile(config, []byte("allow_anonymous: true\nnamespaces:\n  - name: bench\n    history_size: 1000\n    history_ttl: 1h\n    subscribe: anyone\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h := testkit.StartHerald(t, bin, "--engine", "memory", "--addr", "127.0.0.1:0", "--api-key", "k", "--config", config)
	for _, tr := range []string{bench.TransportWebSocket, bench.TransportSSE} {
		cmd := exec.Command(bin, "bench", "fanout", "--server", "http://"+h.Addr, "--api-key", "k", "--transport", tr,
			"--subscribers", "40", "--rate", "200", "--duration", "500ms", "--warmup", "0s", "--procs", "2", "--sources", "2")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bench over %s: %v\n%s%s", tr, err, out, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res bench.Result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
		}
		// 100 publications (200/s for 0.5s) to 40 subscribers, 20 per worker.
		if res.Procs != 2 || res.Connected != 40 || res.Published != 100 || res.Deliveries != 4000 ||
			res.Expected != 4000 || res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.ErrorCount != 0 {
			t.Errorf("over %s: %s\n%s", tr, lines[len(lines)-1], stderr.String())
		}
		if !strings.Contains(string(out), "lost             0 of 4000 expected") {
			t.Errorf("the table does not show the totals:\n%s", out)
		}
	}
}

func TestGeneratorGCHeadroom(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	setGeneratorGC()
	if got := debug.SetGCPercent(100); got != generatorGCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, generatorGCPercent)
	}
	// An operator's GOGC wins.
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	setGeneratorGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GC percent %d with GOGC=50, want 50", got)
	}
}
