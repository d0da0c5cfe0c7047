package client

import (
	"context"
	"encoding/json"

	"github.com/heraldrt/herald/internal/protocol"
)

// RPC calls method on the application's backend through the server's RPC
// proxy and returns the backend's data, which may be nil. data, when not
// nil, must be a JSON value. On WebSocket it travels over the connection
// (waiting for it if the client is connecting); on SSE and polling it is an
// HTTP request (POST /rpc). A server without an RPC proxy answers
// CodeNotAvailable; a backend's refusal is an *Error with its code.
func (c *Client) RPC(ctx context.Context, method string, data []byte) (json.RawMessage, error) {
	req := protocol.RPCRequest{Method: method}
	if data != nil {
		compact, err := compactJSON(data)
		if err != nil {
			return nil, err
		}
		req.Data = compact
	}
	var res protocol.RPCResult
	if err := c.command(ctx, protocol.MethodRPC, &req, &res); err != nil {
		return nil, err
	}
	return res.Data, nil
}
