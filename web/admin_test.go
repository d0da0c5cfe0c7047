package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func getAdmin(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	AdminHandler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// adminIDs are the ids the admin script and the browser test rely on.
var adminIDs = []string{
	"login-form", "password", "login-error", "tabs", "live", "logout",
	"overview", "s-nodes", "s-clients", "s-in", "s-out", "chart", "line-in", "line-out", "transports", "nodes",
	"channels", "pattern", "channel-list", "presence", "history", "history-more",
	"publish-form", "pub-channel", "pub-data", "pub-ephemeral", "pub-result",
	"conn-form", "conn-user", "conn-channel", "conn-client", "conn-list", "conn-note", "cd-channels", "cd-disconnect",
}

func TestAdminPage(t *testing.T) {
	res, body := getAdmin(t, http.MethodGet, AdminPath)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s", AdminPath, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res.Header.Get("Content-Security-Policy") != csp || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers %v", res.Header)
	}
	if inlineCode.MatchString(body) {
		t.Error("the admin page has inline code, which the CSP blocks")
	}
	if !strings.Contains(body, `src="`+SDKPath+`"`) {
		t.Error("the admin page does not load the SDK bundle")
	}
	for _, id := range adminIDs {
		if !regexp.MustCompile(`id="` + id + `"`).MatchString(body) {
			t.Errorf("the admin page has no element #%s", id)
		}
	}
	for _, m := range assetRef.FindAllStringSubmatch(body, -1) {
		if strings.HasPrefix(m[1], "/") {
			continue // the SDK bundle, served by Handler
		}
		if res, _ := getAdmin(t, http.MethodGet, AdminPath+m[1]); res.StatusCode != http.StatusOK {
			t.Errorf("asset %s: %d", m[1], res.StatusCode)
		}
	}
	if res, _ := getAdmin(t, http.MethodGet, AdminPath+"nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d", res.StatusCode)
	}
	if res, _ := getAdmin(t, http.MethodPost, AdminPath); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}
