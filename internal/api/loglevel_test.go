package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestLogLevelReadsAndSets(t *testing.T) {
	var level slog.LevelVar
	srv, _ := apiServer(t, Config{Key: "k", LogLevel: &level})
	url := srv.URL + "/api/log_level"

	var got LogLevelResult
	wantOK(t, post(t, url, "k", `{}`), &got)
	if got != (LogLevelResult{Old: "info", New: "info"}) {
		t.Fatalf("read: %+v", got)
	}
	wantOK(t, post(t, url, "k", `{"level":"debug"}`), &got)
	if got != (LogLevelResult{Old: "info", New: "debug"}) || level.Level() != slog.LevelDebug {
		t.Fatalf("set debug: %+v, level now %v", got, level.Level())
	}
	wantOK(t, post(t, url, "k", `{"level":"WARN"}`), &got)
	if got != (LogLevelResult{Old: "debug", New: "warn"}) || level.Level() != slog.LevelWarn {
		t.Fatalf("set warn: %+v, level now %v", got, level.Level())
	}
	wantError(t, post(t, url, "k", `{"level":"loud"}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantError(t, post(t, url, "", `{"level":"debug"}`), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	if level.Level() != slog.LevelWarn {
		t.Fatalf("a refused call changed the level to %v", level.Level())
	}
}

func TestLogLevelWithoutAVariable(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: "k"})
	r := post(t, srv.URL+"/api/log_level", "k", `{"level":"debug"}`)
	if r.status == http.StatusOK {
		t.Fatalf("set without a level variable: %s", r.body)
	}
}

func TestSetKeyReplacesTheKey(t *testing.T) {
	h := New(Config{Node: newNode(t, node.Config{}), Key: "old"})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv := hs.URL
	if r := post(t, srv+"/api/info", "old", `{}`); r.status != http.StatusOK {
		t.Fatalf("old key before SetKey: %d %s", r.status, r.body)
	}
	h.SetKey("new")
	wantError(t, post(t, srv+"/api/info", "old", `{}`), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	if r := post(t, srv+"/api/info", "new", `{}`); r.status != http.StatusOK {
		t.Fatalf("new key after SetKey: %d %s", r.status, r.body)
	}
	h.SetKey("")
	wantError(t, post(t, srv+"/api/info", "new", `{}`), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
}
