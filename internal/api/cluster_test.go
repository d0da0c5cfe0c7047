package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestConnectionsAndDisconnect(t *testing.T) {
	srv, n := apiServer(t, Config{Key: testKey})
	s, err := n.NewSession(streamTransport{}, node.SessionOptions{Credentials: node.Credentials{UserID: "alice"}, Authenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Finish)
	if err := s.SubscribeStream(context.Background(), []string{"room"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	subscribe(t, n, "room") // an anonymous neighbour

	var conns node.ConnectionsResult
	wantOK(t, post(t, srv.URL+"/api/connections", testKey, `{"user":"alice"}`), &conns)
	if len(conns.Connections) != 1 || conns.Connections[0].Client != s.ID() || conns.Connections[0].Node != n.ID() ||
		len(conns.Connections[0].Channels) != 1 || conns.Connections[0].Channels[0] != "room" {
		t.Fatalf("alice's connections %+v", conns)
	}
	wantOK(t, post(t, srv.URL+"/api/connections", testKey, `{"channel":"room"}`), &conns)
	if len(conns.Connections) != 2 {
		t.Fatalf("room's connections %+v", conns)
	}
	wantError(t, post(t, srv.URL+"/api/connections", testKey, `{}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)

	wantError(t, post(t, srv.URL+"/api/disconnect", testKey, `{}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantOK(t, post(t, srv.URL+"/api/disconnect", testKey, `{"user":"alice"}`), &struct{}{})
	deadline := time.Now().Add(5 * time.Second)
	for s.Closing() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if d := s.Closing(); d == nil || *d != protocol.DisconnectForceNoReconnect {
		t.Fatalf("alice's session after disconnect: %+v", d)
	}
}

func TestSendUser(t *testing.T) {
	n := newNode(t, node.Config{Dev: true, PersonalNamespace: "personal"})
	srv, _ := apiServer(t, Config{Node: n, Key: testKey})
	var res protocol.PublishResult
	wantOK(t, post(t, srv.URL+"/api/send_user", testKey, `{"user":"alice","data":{"n":1}}`), &res)
	if res.Offset != 1 {
		t.Fatalf("send_user result %+v", res)
	}
	hist, err := n.History(context.Background(), protocol.HistoryRequest{Channel: "personal:#alice", Limit: 10})
	if err != nil || len(hist.Publications) != 1 || string(hist.Publications[0].Data) != `{"n":1}` {
		t.Fatalf("personal channel history %+v, %v", hist, err)
	}
	wantError(t, post(t, srv.URL+"/api/send_user", testKey, `{"data":1}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)

	off, _ := apiServer(t, Config{Key: testKey})
	r := post(t, off.URL+"/api/send_user", testKey, `{"user":"alice","data":1}`)
	if r.status == http.StatusOK {
		t.Fatalf("send_user without personal channels answered %d %s", r.status, r.body)
	}
}
