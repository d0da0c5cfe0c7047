package server

import (
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/testkit"
)

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	r := start(t, testConfig())
	get := func(id string) string {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/healthz", nil)
		if id != "" {
			req.Header.Set(RequestIDHeader, id)
		}
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get(RequestIDHeader)
	}
	if got := get("trace-01.ab:cd_EF"); got != "trace-01.ab:cd_EF" {
		t.Fatalf("a sane inbound id came back as %q", got)
	}
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for _, bad := range []string{"", "two words", "line\tbreak", strings.Repeat("x", 65), `"quoted"`} {
		if got := get(bad); !generated.MatchString(got) {
			t.Fatalf("inbound id %q: response id %q, want a generated one", bad, got)
		}
	}
	if a, b := get(""), get(""); a == b {
		t.Fatalf("two requests got the same id %q", a)
	}
}

func TestRequestLogLinesCarryTheRequestID(t *testing.T) {
	logs := &testkit.LockedBuffer{}
	cfg := testConfig()
	cfg.Logger = nil
	cfg.LogFormat = "json"
	cfg.LogLevel = "debug"
	cfg.Logger = cfg.NewLogger(logs)
	r := start(t, cfg)

	req, _ := http.NewRequest(http.MethodPost, r.url+"/api/log_level", strings.NewReader(`{"level":"info"}`))
	req.Header.Set("Authorization", "apikey "+testKey)
	req.Header.Set(RequestIDHeader, "req-42")
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	wantStatus(t, "log_level", res.StatusCode, http.StatusOK, nil)

	for _, msg := range []string{"request", "log level changed"} {
		lines := logLines(t, logs, msg)
		if len(lines) == 0 {
			t.Fatalf("no %q line in %s", msg, logs.String())
		}
		if id := lines[len(lines)-1]["request_id"]; id != "req-42" {
			t.Fatalf("%q line has request_id %v, want req-42", msg, id)
		}
	}
	if lv := cfg.LogLevelVar.Level(); lv != slog.LevelInfo {
		t.Fatalf("level after the API call: %v", lv)
	}
	// At info, the per-request debug line is gone.
	before := len(logLines(t, logs, "request"))
	_, _, _ = r.do(t, http.MethodGet, "/healthz", "", "")
	if after := len(logLines(t, logs, "request")); after != before {
		t.Fatalf("debug request line logged at info level")
	}
}

func TestNewLoggerLevelFollowsItsVariable(t *testing.T) {
	logs := &testkit.LockedBuffer{}
	cfg := Config{LogLevel: "warn", LogFormat: "text"}
	log := cfg.NewLogger(logs)
	log.Info("hidden")
	cfg.LogLevelVar.Set(slog.LevelInfo)
	log.With("k", "v").Info("shown")
	if s := logs.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown") {
		t.Fatalf("logs: %s", s)
	}
}
