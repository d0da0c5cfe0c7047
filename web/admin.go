package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// adminFiles is the admin UI: one page and its script and styles, which
// load the SDK bundle from SDKPath like the demo pages.
//
//go:embed admin
var adminFiles embed.FS

// AdminPath is where the admin UI is served.
const AdminPath = "/admin/"

// AdminHandler serves the admin UI under AdminPath with the demo pages'
// security headers. Paths that name no embedded file are answered 404.
// The page itself is public; everything it shows comes from the admin API,
// which needs the login.
func AdminHandler() http.Handler {
	root, err := fs.Sub(adminFiles, "admin")
	if err != nil {
		panic("web: embedded admin directory missing: " + err.Error())
	}
	files := http.StripPrefix(strings.TrimSuffix(AdminPath, "/"), http.FileServerFS(root))
	return embedded(files.ServeHTTP)
}
