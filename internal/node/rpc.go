package node

import (
	"context"

	"github.com/heraldrt/herald/internal/protocol"
)

// MaxRPCMethod bounds an RPC's method name in bytes.
const MaxRPCMethod = 128

// ClientRPC calls a method of the application's backend on behalf of a
// client of the HTTP commands (SSE and polling clients), through the RPC
// proxy. Without one it fails with ErrNotAvailable.
func (n *Node) ClientRPC(ctx context.Context, cred Credentials, req protocol.RPCRequest) (protocol.RPCResult, error) {
	return n.clientRPC(ctx, nil, cred, req)
}

// clientRPC runs an RPC for session s, or for an HTTP request when s is nil.
func (n *Node) clientRPC(ctx context.Context, s *Session, cred Credentials, req protocol.RPCRequest) (protocol.RPCResult, error) {
	if n.cfg.Proxy.RPC == nil {
		return protocol.RPCResult{}, noProxy("rpc")
	}
	if len(req.Method) > MaxRPCMethod {
		return protocol.RPCResult{}, protocol.ErrBadRequest.With("rpc method longer than %d bytes", MaxRPCMethod)
	}
	if len(req.Data) > n.limits().MaxPublicationSize {
		return protocol.RPCResult{}, protocol.ErrMessageTooLarge.With("rpc data is %d bytes, limit %d", len(req.Data), n.limits().MaxPublicationSize)
	}
	if len(req.Data) > 0 {
		data, err := protocol.NormalizeData(req.Data)
		if err != nil {
			return protocol.RPCResult{}, err
		}
		req.Data = data
	}
	res, err := n.cfg.Proxy.RPC.ProxyRPC(ctx, RPCProxyRequest{ProxyClient: proxyClient(s, cred, "http"), Method: req.Method, Data: req.Data})
	if err != nil {
		return protocol.RPCResult{}, n.proxyFailure("rpc", err, protocol.ErrPermissionDenied)
	}
	if len(res.Data) > 0 {
		// The reply embeds the backend's data unchanged, so it must be JSON
		// without raw newlines, which would split the reply frame.
		data, err := protocol.NormalizeData(res.Data)
		if err != nil {
			n.log.Warn("rpc backend returned data that is not JSON", "method", truncate(req.Method, 64))
			return protocol.RPCResult{}, protocol.ErrBackendUnavailable.With("rpc: the backend's answer is not JSON")
		}
		res.Data = data
	}
	return protocol.RPCResult{Data: res.Data}, nil
}
