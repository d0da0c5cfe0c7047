package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	js "github.com/heraldrt/herald/sdk/js"
)

func TestSDKBundle(t *testing.T) {
	want, err := js.Bundle.ReadFile("dist/herald.min.js")
	if err != nil {
		t.Fatal(err)
	}
	res, body := get(t, http.MethodGet, SDKPath)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET %s: %d %s", SDKPath, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if body != string(want) {
		t.Fatalf("GET %s: %d bytes, not the embedded bundle's %d", SDKPath, len(body), len(want))
	}
	// The bundle defines the global the pages use.
	if !strings.Contains(body, "var Herald=") {
		t.Errorf("the bundle does not define the global Herald: %.120s", body)
	}
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers: ETag %q, Access-Control-Allow-Origin %q", etag, res.Header.Get("Access-Control-Allow-Origin"))
	}

	// A browser revalidating an unchanged bundle downloads nothing.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, SDKPath, nil)
	req.Header.Set("If-None-Match", etag)
	Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("revalidation: %d with %d bytes, want 304 and none", rec.Code, rec.Body.Len())
	}

	res, body = get(t, http.MethodGet, SDKPath+".map")
	var sourceMap struct {
		Sources []string `json:"sources"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &sourceMap) != nil || len(sourceMap.Sources) == 0 {
		t.Fatalf("source map: %d %s, %.80s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	for _, s := range sourceMap.Sources {
		if strings.HasPrefix(s, "/") {
			t.Errorf("the source map names an absolute path %q: the build is not reproducible", s)
		}
	}

	for _, path := range []string{"/sdk/", "/sdk/herald.esm.js", "/sdk/index.d.ts"} {
		if res, _ := get(t, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}
