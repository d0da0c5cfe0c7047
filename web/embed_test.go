package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
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

// pages are the demo pages and the ids browser tests rely on.
var pages = map[string][]string{
	"index.html":      {"live"},
	"chat.html":       {"messages", "composer", "text", "send", "presence", "typing", "rooms"},
	"ticker.html":     {"ticks", "gaps", "dups", "last-offset", "reconnects", "resume"},
	"cursors.html":    {"board", "presence-count"},
	"transports.html": {"log", "rtt", "current-transport", "client-state", "client-id"},
	"call.html":       {"tiles", "local", "join", "mic", "cam", "call-messages", "call-text", "call-send", "file", "transfers"},
}

var (
	// The CSP forbids inline code, so the pages must have none.
	inlineCode = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`)
	assetRef   = regexp.MustCompile(`(?:src|href)="([^":]+)"`)
	scriptTag  = regexp.MustCompile(`<script\s[^>]*>`)
	scriptSrc  = regexp.MustCompile(`\ssrc="([^"]+)"`)
)

func TestPages(t *testing.T) {
	onDisk, err := fs.Glob(pageFiles, "pages/*.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range onDisk {
		if _, ok := pages[path.Base(f)]; !ok && path.Base(f) != "layout.html" {
			t.Errorf("%s is not checked by this test: add it to pages", f)
		}
	}
	if len(demos) != len(pages) {
		t.Errorf("%d demos are served, %d checked", len(demos), len(pages))
	}
	for page, ids := range pages {
		t.Run(page, func(t *testing.T) { checkPage(t, page, ids) })
	}
}

func checkPage(t *testing.T, page string, ids []string) {
	url := "/" + page
	if page == "index.html" {
		url = "/"
	}
	res, body := get(t, http.MethodGet, url)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if m := inlineCode.FindString(body); m != "" {
		t.Errorf("%s has inline code, which the CSP blocks: %q", page, m)
	}
	if !strings.Contains(body, `name="viewport"`) {
		t.Errorf("%s: no viewport meta: the page would not fit a phone", page)
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("%s loads something from another site", page)
	}
	if page == "index.html" && !strings.Contains(body, "<title>Herald demo</title>") {
		t.Error("index.html: the title must stay \"Herald demo\"")
	}
	// Every demo is in the navigation, the page itself marked current.
	for _, d := range demos {
		if d.Label != "" && !strings.Contains(body, `href="`+d.Name+`.html"`) {
			t.Errorf("%s: the navigation lacks %s", page, d.Name)
		}
	}
	current := strings.Count(body, `aria-current="page"`)
	if page == "index.html" && current != 0 || page != "index.html" && (current != 1 || !strings.Contains(body, `href="`+page+`" aria-current="page"`)) {
		t.Errorf("%s: %d links marked current", page, current)
	}
	for _, id := range append([]string{"transport-badge"}, ids...) {
		if !strings.Contains(body, `id="`+id+`"`) {
			t.Errorf("%s lacks #%s", page, id)
		}
	}
	// Every asset the page names is served, the SDK bundle included.
	for _, m := range assetRef.FindAllStringSubmatch(body, -1) {
		p := m[1]
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if res, _ := get(t, http.MethodGet, p); res.StatusCode != http.StatusOK {
			t.Errorf("%s: asset %s: %d", page, m[1], res.StatusCode)
		}
	}
	// The SDK, then the shared demo.js, then the page's own script, all
	// deferred so that they run in that order once the DOM is there.
	var srcs []string
	for _, tag := range scriptTag.FindAllString(body, -1) {
		m := scriptSrc.FindStringSubmatch(tag)
		if m == nil {
			t.Errorf("%s: script without src: %s", page, tag)
			continue
		}
		if !strings.Contains(tag, " defer") {
			t.Errorf("%s: script %s is not deferred", page, m[1])
		}
		srcs = append(srcs, m[1])
	}
	own := strings.TrimSuffix(page, ".html") + ".js"
	if want := []string{SDKPath, "demo.js", own}; strings.Join(srcs, " ") != strings.Join(want, " ") {
		t.Errorf("%s scripts %q, want %q", page, srcs, want)
	}
}

func TestScripts(t *testing.T) {
	files, err := fs.Glob(static, "static/*.js")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("scripts: %q", files)
	}
	for _, f := range files {
		name := path.Base(f)
		res, body := get(t, http.MethodGet, "/"+name)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
			t.Errorf("%s: %d %s", name, res.StatusCode, res.Header.Get("Content-Type"))
			continue
		}
		// Publication data must reach the page through textContent, never
		// as markup.
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
	if _, body := get(t, http.MethodGet, "/demo.js"); !strings.Contains(body, "window.HeraldDemo") || !strings.Contains(body, "/demo/token") {
		t.Error("demo.js does not set up window.HeraldDemo with /demo/token")
	}
}

func TestErrors(t *testing.T) {
	if res, _ := get(t, http.MethodGet, "/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d", res.StatusCode)
	}
	if res, _ := get(t, http.MethodPost, "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", res.StatusCode)
	}
}
