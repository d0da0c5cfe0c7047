// Package web holds Herald's embedded browser pages: the demo page served
// at "/", a small chat over the Herald protocol on WebSocket or SSE.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// csp allows the page nothing but its own origin: its scripts and styles are
// files, never inline, and it connects only to the server that served it.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the demo page at "/" and its assets beside it. Paths that
// name no embedded file are answered 404; methods other than GET and HEAD 405.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: embedded static directory missing: " + err.Error())
	}
	files := http.FileServerFS(root)
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
		files.ServeHTTP(w, r)
	})
}
