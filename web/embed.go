// Package web holds Herald's embedded browser pages: the demo apps served
// at "/" (chat, ticker, collaborative cursors, video call, transport panel), built on
// the TypeScript SDK, whose bundle it serves at SDKPath.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	js "github.com/heraldrt/herald/sdk/js"
)

//go:embed static
var static embed.FS

// The demo pages are templates: each defines its "main" element, and
// pages/layout.html wraps it in the head and navigation they all share.
//
//go:embed pages
var pageFiles embed.FS

// demo is one page: pages/Name.html, with its script static/Name.js.
type demo struct {
	Name  string
	Label string // in the navigation; empty for the front page
	Title string
}

var demos = []demo{
	{Name: "index", Title: "Herald demo"},
	{Name: "chat", Label: "Chat", Title: "Chat · Herald demo"},
	{Name: "ticker", Label: "Ticker", Title: "Ticker · Herald demo"},
	{Name: "cursors", Label: "Cursors", Title: "Cursors · Herald demo"},
	{Name: "call", Label: "Call", Title: "Video call · Herald demo"},
	{Name: "transports", Label: "Transports", Title: "Transports · Herald demo"},
}

// renderPages renders every demo page once, keyed by the path it is
// served at.
func renderPages() map[string][]byte {
	nav := make([]demo, 0, len(demos))
	for _, d := range demos {
		if d.Label != "" {
			nav = append(nav, d)
		}
	}
	out := map[string][]byte{}
	for _, d := range demos {
		t := template.Must(template.ParseFS(pageFiles, "pages/layout.html", "pages/"+d.Name+".html"))
		var b bytes.Buffer
		data := struct {
			Page demo
			Nav  []demo
			SDK  string
		}{d, nav, SDKPath}
		if err := t.ExecuteTemplate(&b, "layout", data); err != nil {
			panic("web: page " + d.Name + ": " + err.Error())
		}
		out["/"+d.Name+".html"] = b.Bytes()
	}
	out["/"] = out["/index.html"]
	return out
}

// csp allows the page nothing but its own origin: its scripts and styles are
// files, never inline, and it connects only to the server that served it.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// SDKPath is where pages load the TypeScript SDK's browser bundle from,
// which defines the global Herald; its source map is beside it.
const SDKPath = "/sdk/herald.min.js"

// sdkFile is one file of the SDK bundle with its validator, so browsers
// that revalidate (no-cache) download it again only after an upgrade.
type sdkFile struct {
	body        []byte
	etag        string
	contentType string
}

func loadSDK() map[string]sdkFile {
	files := map[string]sdkFile{}
	for path, name := range map[string]string{SDKPath: "dist/herald.min.js", SDKPath + ".map": "dist/herald.min.js.map"} {
		b, err := js.Bundle.ReadFile(name)
		if err != nil {
			panic("web: embedded SDK bundle missing: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ct := "text/javascript; charset=utf-8"
		if strings.HasSuffix(name, ".map") {
			ct = "application/json"
		}
		files[path] = sdkFile{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
	}
	return files
}

// Handler serves the demo pages at "/", their assets beside them, and the
// SDK bundle at SDKPath. Paths that name no embedded file are answered 404;
// methods other than GET and HEAD 405.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: embedded static directory missing: " + err.Error())
	}
	files := http.FileServerFS(root)
	sdk := loadSDK()
	pages := renderPages()
	return embedded(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if f, ok := sdk[r.URL.Path]; ok {
			// Pages of other origins may load the bundle with
			// crossorigin and subresource integrity.
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Content-Type", f.contentType)
			h.Set("ETag", f.etag)
			http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(f.body))
			return
		}
		if page, ok := pages[r.URL.Path]; ok {
			h.Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(page))
			return
		}
		files.ServeHTTP(w, r)
	})
}

// embedded serves GET and HEAD with serve, behind the security headers every
// embedded page and asset gets; other methods are answered 405.
func embedded(serve http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files carry no modification time, so make browsers
		// revalidate rather than keep a page from an older binary.
		h.Set("Cache-Control", "no-cache")
		serve(w, r)
	})
}
