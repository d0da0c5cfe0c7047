package api

import (
	"net/http"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// PublishConfig configures the client publish endpoint.
type PublishConfig struct {
	Node *node.Node
	// MaxBodyBytes bounds a request body; larger ones are answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// PublishHandler serves POST /publish for clients on one-way transports (SSE,
// polling), which have no command channel: the body is a publish command's
// params (protocol.PublishRequest) and the answer its result,
// {"offset","epoch"}, or a JSON error body. The namespace's publish
// permission applies as for a WebSocket client.
type PublishHandler struct {
	node    *node.Node
	maxBody int64
}

// NewPublishHandler returns the client publish endpoint.
func NewPublishHandler(cfg PublishConfig) *PublishHandler {
	h := &PublishHandler{node: cfg.Node, maxBody: cfg.MaxBodyBytes}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	return h
}

// ServeHTTP publishes on behalf of an anonymous client. Credentials come from
// the request once client authentication exists; until then every HTTP
// publisher is anonymous, so only namespaces whose publish access is
// "anyone" accept it.
func (h *PublishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErrorStatus(w, http.StatusMethodNotAllowed, protocol.ErrBadRequest.With("method %s not allowed, use POST", r.Method))
		return
	}
	var req protocol.PublishRequest
	if err := decodeBody(w, r, h.maxBody, &req); err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	res, err := h.node.ClientPublish(r.Context(), node.Credentials{}, nil, req)
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	writeJSON(w, res)
}
