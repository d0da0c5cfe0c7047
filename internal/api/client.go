package api

import (
	"context"
	"net/http"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// ClientConfig configures the client HTTP endpoints.
type ClientConfig struct {
	Node *node.Node
	// MaxBodyBytes bounds a request body; larger ones are answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// ClientPaths are the paths the client endpoints answer, each mounted at
// the server's root.
var ClientPaths = []string{"/publish", "/history", "/presence", "/presence_stats", "/rpc"}

// ClientHandler serves the commands that clients on one-way transports (SSE,
// polling) cannot send over their stream: POST /publish, /history,
// /presence and /presence_stats. Each body is the params of the WebSocket
// command of the same name and each answer its result, or a JSON error body.
// The namespace's permissions apply as for a WebSocket client.
type ClientHandler struct {
	node    *node.Node
	maxBody int64
	routes  map[string]http.HandlerFunc
}

// NewClientHandler returns the client endpoints.
func NewClientHandler(cfg ClientConfig) *ClientHandler {
	h := &ClientHandler{node: cfg.Node, maxBody: cfg.MaxBodyBytes}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	// Each request brings its own credentials: the server authenticated its
	// token before routing it here.
	h.routes = map[string]http.HandlerFunc{
		"/publish": serve(h.maxBody, func(ctx context.Context, req *protocol.PublishRequest) (any, error) {
			cred, err := h.node.RequestCredentials(ctx)
			if err != nil {
				return nil, err
			}
			// An HTTP client has no client id; a user, if any, is who published.
			var info *protocol.ClientInfo
			if cred.UserID != "" {
				info = &protocol.ClientInfo{User: cred.UserID, Info: cred.Info}
			}
			return h.node.ClientPublish(ctx, cred, info, *req)
		}),
		"/history": serve(h.maxBody, func(ctx context.Context, req *protocol.HistoryRequest) (any, error) {
			cred, err := h.node.RequestCredentials(ctx)
			if err != nil {
				return nil, err
			}
			return h.node.ClientHistory(ctx, cred, *req)
		}),
		"/presence": serve(h.maxBody, func(ctx context.Context, req *protocol.PresenceRequest) (any, error) {
			cred, err := h.node.RequestCredentials(ctx)
			if err != nil {
				return nil, err
			}
			clients, err := h.node.ClientPresence(ctx, cred, req.Channel)
			return protocol.PresenceResult{Clients: clients}, err
		}),
		"/presence_stats": serve(h.maxBody, func(ctx context.Context, req *protocol.PresenceRequest) (any, error) {
			cred, err := h.node.RequestCredentials(ctx)
			if err != nil {
				return nil, err
			}
			return h.node.ClientPresenceStats(ctx, cred, req.Channel)
		}),
		"/rpc": serve(h.maxBody, func(ctx context.Context, req *protocol.RPCRequest) (any, error) {
			cred, err := h.node.RequestCredentials(ctx)
			if err != nil {
				return nil, err
			}
			return h.node.ClientRPC(ctx, cred, *req)
		}),
	}
	return h
}

// ServeHTTP routes a client request by its path.
func (h *ClientHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, ok := h.routes[r.URL.Path]
	if !ok {
		protocol.WriteHTTPError(w, protocol.ErrMethodNotFound.With("no client endpoint %q", truncate(r.URL.Path, 64)))
		return
	}
	if !requirePost(w, r) {
		return
	}
	route(w, r)
}
