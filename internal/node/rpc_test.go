package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func TestRPCOverSession(t *testing.T) {
	b := &fakeBackend{
		connect: func(ConnectProxyRequest) (ConnectProxyResult, error) { return ConnectProxyResult{User: "alice"}, nil },
		rpc: func(req RPCProxyRequest) (RPCProxyResult, error) {
			if req.Method != "sum" || req.User != "alice" || req.Transport != "test" {
				return RPCProxyResult{}, &ProxyError{Code: 1404, Message: "no such method"}
			}
			return RPCProxyResult{Data: json.RawMessage("{\"sum\":\n3}")}, nil
		},
	}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b, RPC: b}})
	p, _ := connectVia(t, n, nil, "")
	p.s.HandleFrame(context.Background(), command(2, protocol.MethodRPC, map[string]any{"method": "sum", "data": []int{1, 2}}))
	p.s.HandleFrame(context.Background(), command(3, protocol.MethodRPC, map[string]any{"method": "nope"}))
	var ok, refused map[string]json.RawMessage
	testkit.WaitFor(t, 5*time.Second, "rpc replies", func() bool {
		var a, b bool
		ok, a = replyTo(p.items(), 2)
		refused, b = replyTo(p.items(), 3)
		return a && b
	})
	if string(ok["result"]) != `{"data":{"sum":3}}` {
		t.Errorf("rpc result %s", ok["result"])
	}
	if !strings.Contains(string(refused["error"]), `"code":1404`) {
		t.Errorf("refused rpc %s, want the backend's 1404", refused["error"])
	}
}

func TestRPCWithoutBackend(t *testing.T) {
	n := newTestNode(t, Config{})
	_, err := n.ClientRPC(context.Background(), Credentials{}, protocol.RPCRequest{Method: "x"})
	if !errors.Is(err, protocol.ErrNotAvailable) {
		t.Errorf("rpc without backend: %v, want 108", err)
	}
}

func TestRPCBounds(t *testing.T) {
	b := &fakeBackend{rpc: func(RPCProxyRequest) (RPCProxyResult, error) {
		return RPCProxyResult{Data: json.RawMessage(`not json`)}, nil
	}}
	n := newTestNode(t, Config{MaxPublicationSize: 16, Proxy: Proxies{RPC: b}})
	ctx := context.Background()
	for _, tc := range []struct {
		req  protocol.RPCRequest
		want *protocol.Error
	}{
		{protocol.RPCRequest{Method: strings.Repeat("m", MaxRPCMethod+1)}, protocol.ErrBadRequest},
		{protocol.RPCRequest{Method: "m", Data: json.RawMessage(`"` + strings.Repeat("d", 20) + `"`)}, protocol.ErrMessageTooLarge},
		{protocol.RPCRequest{Method: "m", Data: json.RawMessage(`{`)}, protocol.ErrBadRequest},
		{protocol.RPCRequest{Method: "m"}, protocol.ErrBackendUnavailable},
	} {
		if _, err := n.ClientRPC(ctx, Credentials{}, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("rpc %.40q: %v, want code %d", tc.req.Method, err, tc.want.Code)
		}
	}
}

// A slow backend holds neither the session's later commands nor more than
// maxRPCsPerSession of its RPCs.
func TestRPCRunsOffTheCommandPath(t *testing.T) {
	release := make(chan struct{})
	b := &fakeBackend{
		connect: func(ConnectProxyRequest) (ConnectProxyResult, error) { return ConnectProxyResult{User: "alice"}, nil },
		rpc: func(RPCProxyRequest) (RPCProxyResult, error) {
			<-release
			return RPCProxyResult{Data: json.RawMessage(`1`)}, nil
		},
	}
	n := newTestNode(t, Config{Proxy: Proxies{Connect: b, RPC: b}})
	p, _ := connectVia(t, n, nil, "")
	ctx := context.Background()
	for id := uint32(10); id < 10+maxRPCsPerSession+1; id++ {
		p.s.HandleFrame(ctx, command(id, protocol.MethodRPC, map[string]any{"method": "slow"}))
	}
	p.s.HandleFrame(ctx, command(2, protocol.MethodPing, nil))
	testkit.WaitFor(t, 5*time.Second, "the ping reply while rpcs wait", func() bool {
		_, ok := replyTo(p.items(), 2)
		return ok
	})
	over, ok := replyTo(p.items(), 10+maxRPCsPerSession)
	if !ok || !strings.Contains(string(over["error"]), `"code":111`) {
		t.Errorf("rpc beyond the per-session bound: %v, want 111", over)
	}
	close(release)
	testkit.WaitFor(t, 5*time.Second, "the rpc replies", func() bool {
		for id := uint32(10); id < 10+maxRPCsPerSession; id++ {
			if r, ok := replyTo(p.items(), id); !ok || string(r["result"]) != `{"data":1}` {
				return false
			}
		}
		return true
	})
}
