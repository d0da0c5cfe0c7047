package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
)

// rpcBackend authenticates clients by their session cookie and answers the
// "whoami" RPC with the user and the data it was sent.
func rpcBackend(t *testing.T) *httptest.Server {
	t.Helper()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/connect", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Cookies map[string]string `json:"cookies"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Cookies["sid"] != "alice-session" {
			reply(w, map[string]any{"error": map[string]any{"code": 1401, "message": "no session"}})
			return
		}
		reply(w, map[string]any{"result": map[string]any{"user": "alice"}})
	})
	mux.HandleFunc("/rpc", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User   string          `json:"user"`
			Method string          `json:"method"`
			Data   json.RawMessage `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Method != "whoami" {
			reply(w, map[string]any{"error": map[string]any{"code": 1404, "message": "unknown method"}})
			return
		}
		reply(w, map[string]any{"result": map[string]any{"data": map[string]any{"user": req.User, "echo": req.Data}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRPCThroughBackend(t *testing.T) {
	backend := rpcBackend(t)
	srv := startServer(t, func(cfg *server.Config) {
		cfg.Proxy.ConnectURL = backend.URL + "/connect"
		cfg.Proxy.RPCURL = backend.URL + "/rpc"
		cfg.Proxy.Cookies = []string{"sid"}
	})
	for _, tr := range []client.Transport{client.WebSocket, client.SSE} {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, func(cfg *client.Config) {
				cfg.Header = http.Header{"Cookie": {"sid=alice-session"}}
			})
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := c.RPC(ctx, "whoami", []byte(`{"n": 1}`))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != `{"echo":{"n":1},"user":"alice"}` {
				t.Errorf("rpc answered %s", got)
			}
			_, err = c.RPC(ctx, "nope", nil)
			var e *client.Error
			if !errors.As(err, &e) || e.Code != 1404 {
				t.Errorf("unknown method: %v, want the backend's code 1404", err)
			}
		})
	}
}

func TestRPCWithoutBackend(t *testing.T) {
	srv := startServer(t, nil)
	ctx := ctxT(t)
	c := newClient(t, srv.URL(), client.WebSocket, nil)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.RPC(ctx, "whoami", nil)
	if !errors.Is(err, &client.Error{Code: client.CodeNotAvailable}) {
		t.Errorf("rpc without a backend: %v, want code %d", err, client.CodeNotAvailable)
	}
	if _, err := c.RPC(ctx, "x", []byte("{")); err == nil {
		t.Error("rpc with data that is not JSON was sent")
	}
}
