package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// surveyTimeout bounds how long a connections call waits for other nodes.
const surveyTimeout = 3 * time.Second

// DisconnectRequest closes a user's connections, or one client's, on every
// node. Reconnect tells the clients to come back (and resume); without it
// they are told not to.
type DisconnectRequest struct {
	User      string `json:"user,omitempty"`
	Client    string `json:"client,omitempty"`
	Reconnect bool   `json:"reconnect,omitempty"`
}

func (h *Handler) disconnect(ctx context.Context, req *DisconnectRequest) (any, error) {
	err := h.node.Disconnect(ctx, node.ConnectionFilter{User: req.User, Client: req.Client}, req.Reconnect)
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// ConnectionsRequest lists connections across the cluster by user, client
// or channel (at least one).
type ConnectionsRequest struct {
	User    string `json:"user,omitempty"`
	Client  string `json:"client,omitempty"`
	Channel string `json:"channel,omitempty"`
}

func (h *Handler) connections(ctx context.Context, req *ConnectionsRequest) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	return h.node.Connections(ctx, node.ConnectionFilter{User: req.User, Client: req.Client, Channel: req.Channel})
}

// SendUserRequest publishes to a user's personal channel.
type SendUserRequest struct {
	User      string          `json:"user"`
	Data      json.RawMessage `json:"data"`
	Ephemeral bool            `json:"ephemeral,omitempty"`
}

func (h *Handler) sendUser(ctx context.Context, req *SendUserRequest) (any, error) {
	if req.User == "" {
		return nil, protocol.ErrBadRequest.With("user required")
	}
	return h.node.SendToUser(ctx, req.User, req.Data, req.Ephemeral)
}
