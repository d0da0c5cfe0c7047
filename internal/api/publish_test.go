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
	srv := httptest.NewServer(NewPublishHandler(PublishConfig{Node: n, MaxBodyBytes: 256}))
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
