package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestClientPublish(t *testing.T) {
	n := newNode(t, node.Config{Namespaces: []node.NamespaceOptions{
		{Name: ""}, // closed: zero access values deny
		{Name: "open", HistorySize: 10, HistoryTTL: 60e9, Publish: node.AccessAnyone},
		{Name: "members", Publish: node.AccessAuthenticated},
	}})
	srv := httptest.NewServer(NewClientHandler(ClientConfig{Node: n, MaxBodyBytes: 256}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/publish"

	var res protocol.PublishResult
	wantOK(t, post(t, url, "", `{"channel":"open:room","data":{"text":"hi"}}`), &res)
	if res.Offset != 1 || res.Epoch == "" {
		t.Fatalf("publish result %+v", res)
	}
	wantError(t, post(t, url, "", `{"channel":"closed","data":1}`), http.StatusForbidden, protocol.ErrPermissionDenied.Code)
	wantError(t, post(t, url, "", `{"channel":"members:x","data":1}`), http.StatusForbidden, protocol.ErrPermissionDenied.Code)
	wantError(t, post(t, url, "", `{"channel":"nowhere:x","data":1}`), http.StatusNotFound, protocol.ErrUnknownChannel.Code)
	wantError(t, post(t, url, "", `{"channel":"open:room","data":1,"extra":true}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantError(t, post(t, url, "", `{"channel":"open:room","data":"`+strings.Repeat("x", 300)+`"}`), http.StatusRequestEntityTooLarge, protocol.ErrMessageTooLarge.Code)

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	wantError(t, do(t, req), http.StatusMethodNotAllowed, protocol.ErrBadRequest.Code)
}

func TestClientHistoryAndPresence(t *testing.T) {
	n := newNode(t, node.Config{Namespaces: []node.NamespaceOptions{
		{Name: "", HistorySize: 10, HistoryTTL: 60e9, Presence: true}, // subscribe only for members
		{Name: "open", HistorySize: 10, HistoryTTL: 60e9, Presence: true, Publish: node.AccessAnyone,
			HistoryAccess: node.AccessAnyone, PresenceAccess: node.AccessAnyone},
	}})
	srv := httptest.NewServer(NewClientHandler(ClientConfig{Node: n}))
	t.Cleanup(srv.Close)
	for i := range 3 {
		wantOK(t, post(t, srv.URL+"/publish", "", `{"channel":"open:h","data":`+string(rune('0'+i))+`}`), &protocol.PublishResult{})
	}
	var hist protocol.HistoryResult
	wantOK(t, post(t, srv.URL+"/history", "", `{"channel":"open:h","limit":2}`), &hist)
	if len(hist.Publications) != 2 || hist.Offset != 3 || string(hist.Publications[1].Data) != "1" {
		t.Fatalf("history %+v", hist)
	}
	var pres protocol.PresenceResult
	wantOK(t, post(t, srv.URL+"/presence", "", `{"channel":"open:h"}`), &pres)
	if pres.Clients == nil || len(pres.Clients) != 0 {
		t.Fatalf("presence %+v", pres)
	}
	var stats protocol.PresenceStatsResult
	wantOK(t, post(t, srv.URL+"/presence_stats", "", `{"channel":"open:h"}`), &stats)
	wantError(t, post(t, srv.URL+"/history", "", `{"channel":"closed"}`), http.StatusForbidden, protocol.ErrPermissionDenied.Code)
	wantError(t, post(t, srv.URL+"/presence", "", `{"channel":"closed"}`), http.StatusForbidden, protocol.ErrPermissionDenied.Code)
	wantError(t, post(t, srv.URL+"/presence_stats", "", `{"channel":"closed"}`), http.StatusForbidden, protocol.ErrPermissionDenied.Code)
	wantError(t, post(t, srv.URL+"/nothing", "", `{}`), http.StatusNotFound, protocol.ErrMethodNotFound.Code)
}

// History answers carry data exactly as published: no HTML escaping.
func TestHistoryKeepsDataUnescaped(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey})
	wantOK(t, post(t, srv.URL+"/api/publish", testKey, `{"channel":"h","data":{"t":"<a&b>"}}`), &protocol.PublishResult{})
	r := post(t, srv.URL+"/api/history", testKey, `{"channel":"h"}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `{"t":"<a&b>"}`) {
		t.Fatalf("history %d: %s", r.status, r.body)
	}
}
