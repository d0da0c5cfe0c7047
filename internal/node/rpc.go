package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// MaxRPCMethod bounds an RPC's method name in bytes.
const MaxRPCMethod = 128

// Bounds on RPCs in flight, per session and per node; one more is answered
// ErrTooManyRequests. They run off the connection's command path (rpcAsync)
// so that a slow backend holds neither the commands and pongs after them
// nor the transport's shared command workers.
const (
	maxRPCsPerSession = 16
	maxRPCs           = 1024
)

// maxProxyCall bounds a backend call the node waits for off a command path,
// should a proxy not bound its own.
const maxProxyCall = time.Minute

// rpcAsync runs an rpc command on its own goroutine and replies when the
// backend has answered; replies carry the command's id, so their order
// does not matter.
func (s *Session) rpcAsync(ctx context.Context, id uint32, req protocol.RPCRequest) {
	s.mu.Lock()
	if s.rpcs >= maxRPCsPerSession {
		s.mu.Unlock()
		s.reply(id, nil, protocol.ErrTooManyRequests.With("more than %d rpcs in flight", maxRPCsPerSession))
		return
	}
	select {
	case s.n.rpcSlots <- struct{}{}:
	default:
		s.mu.Unlock()
		s.reply(id, nil, protocol.ErrTooManyRequests.With("the server has %d rpcs in flight", maxRPCs))
		return
	}
	s.rpcs++
	cred := s.cred
	s.mu.Unlock()
	// The command's context ends when the connection goes idle, which it
	// may well do while the backend thinks.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxProxyCall)
	go func() {
		defer cancel()
		res, err := s.n.clientRPC(ctx, s, cred, req)
		<-s.n.rpcSlots
		s.mu.Lock()
		s.rpcs--
		s.mu.Unlock()
		s.reply(id, res, err)
	}()
}

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
	if most := n.limits().MaxPublicationSize; len(req.Data) > most {
		return protocol.RPCResult{}, protocol.ErrMessageTooLarge.With("rpc data is %d bytes, limit %d", len(req.Data), most)
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
	// The reply's encoding compacts the data (protocol.Marshal), but would
	// fail on data that is not JSON: check it here to answer 118, not 100.
	if len(res.Data) > 0 && !json.Valid(res.Data) {
		n.log.Warn("rpc backend returned data that is not JSON", "method", truncate(req.Method, 64))
		return protocol.RPCResult{}, protocol.ErrBackendUnavailable.With("rpc: the backend's answer is not JSON")
	}
	return protocol.RPCResult{Data: res.Data}, nil
}
