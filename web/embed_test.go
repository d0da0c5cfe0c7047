package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestIndex(t *testing.T) {
	res, body := get(t, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// The CSP forbids inline code, so the page must have none.
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`)
	if m := inline.FindString(body); m != "" {
		t.Errorf("index.html has inline code, which the CSP blocks: %q", m)
	}
	if !strings.Contains(body, `name="viewport"`) {
		t.Error("no viewport meta: the page would not fit a phone")
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("index.html loads something from another site")
	}
	// Every asset the page names is served.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^":]+)"`).FindAllStringSubmatch(body, -1) {
		if res, _ := get(t, http.MethodGet, "/"+m[1]); res.StatusCode != http.StatusOK {
			t.Errorf("asset %s: %d", m[1], res.StatusCode)
		}
	}
}

func TestAssets(t *testing.T) {
	res, body := get(t, http.MethodGet, "/app.js")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`"connect"`, `"subscribe"`, `"pong"`, "EventSource", "/publish", `split("\n")`} {
		if !strings.Contains(body, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
	if strings.Contains(body, "innerHTML") {
		t.Error("app.js uses innerHTML; message data must go through textContent")
	}
	if res, _ := get(t, http.MethodGet, "/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d", res.StatusCode)
	}
	if res, _ := get(t, http.MethodPost, "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", res.StatusCode)
	}
}
