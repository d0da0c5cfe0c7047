package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// Proxies let the application's backend decide what tokens and namespace
// rules decide otherwise. Every kind is optional; a nil one is not asked.
type Proxies struct {
	// Connect authenticates clients that bring no token.
	Connect ConnectProxy
	// Refresh extends, when it expires, a session Connect authenticated.
	Refresh RefreshProxy
	// Subscribe and Publish decide for namespaces with ProxySubscribe or
	// ProxyPublish, in place of their access rules.
	Subscribe SubscribeProxy
	Publish   PublishProxy
	// RPC answers clients' rpc commands.
	RPC RPCProxy
}

// The proxy interfaces. Each returns the backend's answer, a *ProxyError
// when the backend refused, a *ProxyDisconnect when it asked to disconnect
// the client, or any other error when it could not be asked, which clients
// see as protocol.ErrBackendUnavailable.
type (
	ConnectProxy interface {
		ProxyConnect(ctx context.Context, req ConnectProxyRequest) (ConnectProxyResult, error)
	}
	RefreshProxy interface {
		ProxyRefresh(ctx context.Context, req RefreshProxyRequest) (RefreshProxyResult, error)
	}
	SubscribeProxy interface {
		ProxySubscribe(ctx context.Context, req SubscribeProxyRequest) (SubscribeProxyResult, error)
	}
	PublishProxy interface {
		ProxyPublish(ctx context.Context, req PublishProxyRequest) (PublishProxyResult, error)
	}
	RPCProxy interface {
		ProxyRPC(ctx context.Context, req RPCProxyRequest) (RPCProxyResult, error)
	}
)

// ProxyError is a backend's refusal. Codes in the application range
// (protocol.AppErrorMin to AppErrorMax) reach the client as they are; others
// become the refusal of the request's kind (ErrUnauthorized on connect and
// refresh, ErrPermissionDenied otherwise), with the backend's message.
type ProxyError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *ProxyError) Error() string { return fmt.Sprintf("backend error %d: %s", e.Code, e.Message) }

// ProxyDisconnect is a backend asking to close the client's connection.
// Codes in the application close ranges reach the client as they are,
// reconnecting below 4500; others become protocol.DisconnectForceNoReconnect
// with the backend's reason.
type ProxyDisconnect struct {
	Code   uint16 `json:"code"`
	Reason string `json:"reason"`
}

func (e *ProxyDisconnect) Error() string {
	return fmt.Sprintf("backend disconnect %d: %s", e.Code, e.Reason)
}

// ProxyClient identifies the client a proxy request is about. Client is
// empty where there is no session yet (SSE, polling, HTTP commands).
type ProxyClient struct {
	Client    string `json:"client,omitempty"`
	Transport string `json:"transport"`
	Protocol  string `json:"protocol"`
	User      string `json:"user,omitempty"`
}

// RequestMeta is what a connect proxy learns of the client's HTTP request:
// only the headers and cookies the proxy is configured to forward.
type RequestMeta struct {
	Transport  string
	RemoteAddr string
	Headers    map[string]string
	Cookies    map[string]string
}

// ConnectProxyRequest asks the backend who a client is.
type ConnectProxyRequest struct {
	ProxyClient
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Cookies    map[string]string `json:"cookies,omitempty"`
	Data       json.RawMessage   `json:"data,omitempty"`
}

// ConnectProxyResult is the backend's identification of the client: its
// user, when its session ends (ExpireAt, Unix seconds; zero: never), its
// info, server-side subscriptions, and data returned to the client.
type ConnectProxyResult struct {
	User     string          `json:"user"`
	ExpireAt int64           `json:"expire_at,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// RefreshProxyRequest asks the backend whether a session may go on.
type RefreshProxyRequest struct {
	ProxyClient
}

// RefreshProxyResult ends the session (Expired) or moves its end to ExpireAt.
type RefreshProxyResult struct {
	Expired  bool  `json:"expired,omitempty"`
	ExpireAt int64 `json:"expire_at,omitempty"`
}

// SubscribeProxyRequest asks the backend whether a client may subscribe.
type SubscribeProxyRequest struct {
	ProxyClient
	Channel string `json:"channel"`
}

// SubscribeProxyResult allows the subscription.
type SubscribeProxyResult struct{}

// PublishProxyRequest asks the backend whether a client may publish Data.
type PublishProxyRequest struct {
	ProxyClient
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// PublishProxyResult allows the publication; Data, when set, replaces the
// client's data.
type PublishProxyResult struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// RPCProxyRequest calls Method on the backend.
type RPCProxyRequest struct {
	ProxyClient
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// RPCProxyResult is the backend's answer to an RPC.
type RPCProxyResult struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// proxyRetry is how soon a session whose refresh the backend did not answer
// asks again; it stays open meanwhile, as an outage of the backend should
// not disconnect every client.
const proxyRetry = 10 * time.Second

// disconnectError is a refusal that also closes the session it happened on.
type disconnectError struct {
	d   protocol.Disconnect
	err *protocol.Error
}

func (e *disconnectError) Error() string { return e.err.Error() }
func (e *disconnectError) Unwrap() error { return e.err }

// proxyFailure turns what a proxy returned into the error a client sees:
// refusal is the kind's refusal for codes outside the application range.
func (n *Node) proxyFailure(kind string, err error, refusal *protocol.Error) error {
	var pe *ProxyError
	var pd *ProxyDisconnect
	switch {
	case errors.As(err, &pe):
		if pe.Code >= protocol.AppErrorMin && pe.Code <= protocol.AppErrorMax {
			return &protocol.Error{Code: pe.Code, Message: truncate(pe.Message, 256)}
		}
		return refusal.With("%s", truncate(pe.Message, 256))
	case errors.As(err, &pd):
		d := protocol.Disconnect{Code: pd.Code, Reason: truncate(pd.Reason, 100)}
		switch {
		case d.Code >= protocol.AppCloseMin && d.Code <= 4999:
		case d.Code >= protocol.AppCloseReconnectMin && d.Code < 4500:
			d.Reconnect = true
		default:
			d = protocol.DisconnectForceNoReconnect
			d.Reason = truncate(pd.Reason, 100)
		}
		return &disconnectError{d: d, err: refusal.With("%s", d.Reason)}
	default:
		n.log.Warn("backend proxy failed", "kind", kind, "err", err)
		return protocol.ErrBackendUnavailable.With("%s", kind)
	}
}

// proxyClient describes the client behind a session, or an HTTP request
// when s is nil.
func proxyClient(s *Session, cred Credentials, transport string) ProxyClient {
	c := ProxyClient{Transport: transport, Protocol: "json", User: cred.UserID}
	if s != nil {
		c.Client, c.Transport = s.id, s.t.Name()
	}
	return c
}

// proxyConnect asks the connect proxy who a client is; s is nil for an HTTP
// request (SSE, polling, HTTP commands).
func (n *Node) proxyConnect(ctx context.Context, s *Session, meta *RequestMeta, data json.RawMessage) (Credentials, json.RawMessage, error) {
	req := ConnectProxyRequest{ProxyClient: proxyClient(s, Credentials{}, "http"), Data: data}
	if meta != nil {
		if s == nil && meta.Transport != "" {
			req.Transport = meta.Transport
		}
		req.RemoteAddr, req.Headers, req.Cookies = meta.RemoteAddr, meta.Headers, meta.Cookies
	}
	release, err := n.holdProxySlot("connect")
	if err != nil {
		return Credentials{}, nil, err
	}
	res, err := n.cfg.Proxy.Connect.ProxyConnect(ctx, req)
	release()
	if err != nil {
		err = n.proxyFailure("connect", err, protocol.ErrUnauthorized)
		n.observer().AuthFailed(protocol.AsError(err).Code)
		return Credentials{}, nil, err
	}
	cred := Credentials{UserID: res.User, Info: res.Info, Channels: res.Channels, viaProxy: true}
	if res.ExpireAt != 0 {
		cred.ExpiresAt = time.Unix(res.ExpireAt, 0)
		if !cred.ExpiresAt.After(time.Now()) {
			return Credentials{}, nil, protocol.ErrTokenExpired.With("the backend's expire_at has passed")
		}
	}
	if len(res.Info) > 0 && !json.Valid(res.Info) {
		return Credentials{}, nil, protocol.ErrUnauthorized.With("the backend's info is not JSON")
	}
	if len(res.Data) > 0 && !json.Valid(res.Data) {
		return Credentials{}, nil, protocol.ErrUnauthorized.With("the backend's data is not JSON")
	}
	if err := n.completeCredentials(&cred); err != nil {
		return Credentials{}, nil, err
	}
	return cred, res.Data, nil
}

// BlockingProxyCalls is how many backend requests commands may wait for at
// once on this node (Config.MaxProxyRequests), or 0 without a connect,
// subscribe or publish proxy. A WebSocket command that waits for the
// backend holds one of its transport's shared command workers, so the
// transports add this many workers to their pools: a slow backend then
// cannot take the workers that other connections' commands and pongs need.
func (n *Node) BlockingProxyCalls() int { return cap(n.proxySlots) }

// holdProxySlot takes one of the node's slots for a backend request that a
// command waits for, and returns its release. With every slot taken it
// fails at once, rather than wait and hold a command worker meanwhile.
func (n *Node) holdProxySlot(kind string) (release func(), err error) {
	select {
	case n.proxySlots <- struct{}{}:
		return func() { <-n.proxySlots }, nil
	default:
		return nil, protocol.ErrBackendUnavailable.With("%s: %d backend requests in flight on this node", kind, cap(n.proxySlots))
	}
}

// refreshByProxyLocked reports whether the refresh proxy, rather than the
// client, renews the session. Caller must hold s.mu.
func (s *Session) refreshByProxyLocked() bool {
	return s.cred.viaProxy && s.n.cfg.Proxy.Refresh != nil
}

// proxyRefresh asks the refresh proxy whether the session, whose end has
// come, may go on. It runs on its own goroutine, one per session at a time:
// the expiry timer is re-armed only when it is done.
func (s *Session) proxyRefresh() {
	s.mu.Lock()
	cred := s.cred
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), maxProxyCall)
	defer cancel()
	res, err := s.n.cfg.Proxy.Refresh.ProxyRefresh(ctx, RefreshProxyRequest{ProxyClient: proxyClient(s, cred, "")})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateFinished || s.closing != nil {
		return
	}
	if err != nil {
		err = s.n.proxyFailure("refresh", err, protocol.ErrUnauthorized)
		var de *disconnectError
		switch {
		case errors.As(err, &de):
			s.closeLocked(de.d)
		case errors.Is(err, protocol.ErrBackendUnavailable):
			s.expiry.Reset(proxyRetry)
		default:
			s.closeLocked(protocol.DisconnectTokenExpired)
		}
		return
	}
	exp := time.Unix(res.ExpireAt, 0)
	if res.Expired || res.ExpireAt == 0 || !exp.After(time.Now()) {
		s.closeLocked(protocol.DisconnectTokenExpired)
		return
	}
	s.cred.ExpiresAt = exp
	s.armExpiryLocked()
}

// authorizeSubscribe decides whether cred may subscribe to channel: the
// subscribe proxy in namespaces with ProxySubscribe, unless the client
// brings a subscription token, and the namespace's rules otherwise. s is
// nil for HTTP requests.
func (n *Node) authorizeSubscribe(ctx context.Context, s *Session, cred Credentials, ns NamespaceOptions, channel string, az authorization) error {
	if !ns.ProxySubscribe || az.grant != nil {
		return n.authorize(cred, ns, channel, actSubscribe, az)
	}
	if n.cfg.Proxy.Subscribe == nil {
		return noProxy("subscribe")
	}
	req := SubscribeProxyRequest{ProxyClient: proxyClient(s, cred, "http"), Channel: channel}
	release, err := n.holdProxySlot("subscribe")
	if err != nil {
		return err
	}
	_, err = n.cfg.Proxy.Subscribe.ProxySubscribe(ctx, req)
	release()
	if err != nil {
		err = n.proxyFailure("subscribe", err, protocol.ErrPermissionDenied)
		n.observer().AuthFailed(protocol.AsError(err).Code)
		return err
	}
	return nil
}

// authorizePublish decides whether cred may publish data to channel: the
// publish proxy in namespaces with ProxyPublish, which may replace the
// data, and the namespace's rules otherwise.
func (n *Node) authorizePublish(ctx context.Context, cred Credentials, info *protocol.ClientInfo, ns NamespaceOptions, req *protocol.PublishRequest, az authorization) error {
	if !ns.ProxyPublish {
		return n.authorize(cred, ns, req.Channel, actPublish, az)
	}
	if n.cfg.Proxy.Publish == nil {
		return noProxy("publish")
	}
	data, err := protocol.NormalizeData(req.Data)
	if err != nil {
		return err
	}
	preq := PublishProxyRequest{ProxyClient: n.callerOf(cred, info), Channel: req.Channel, Data: data}
	release, err := n.holdProxySlot("publish")
	if err != nil {
		return err
	}
	res, err := n.cfg.Proxy.Publish.ProxyPublish(ctx, preq)
	release()
	if err != nil {
		err = n.proxyFailure("publish", err, protocol.ErrPermissionDenied)
		n.observer().AuthFailed(protocol.AsError(err).Code)
		return err
	}
	if len(res.Data) > 0 {
		req.Data = res.Data
	}
	return nil
}

// callerOf describes the client behind info: a session of this node, or
// an HTTP request when info names none.
func (n *Node) callerOf(cred Credentials, info *protocol.ClientInfo) ProxyClient {
	if info != nil && info.Client != "" {
		if s := n.sessions.get(info.Client); s != nil {
			return proxyClient(s, cred, "")
		}
	}
	return proxyClient(nil, cred, "http")
}

// checkProxies refuses namespaces that need a proxy the node lacks. A
// namespace reloaded later without its proxy refuses clients instead
// (noProxy).
func checkProxies(p Proxies, list []NamespaceOptions) error {
	for _, ns := range list {
		if ns.ProxySubscribe && p.Subscribe == nil {
			return fmt.Errorf("namespace %q: proxy_subscribe needs a subscribe proxy", ns.Name)
		}
		if ns.ProxyPublish && p.Publish == nil {
			return fmt.Errorf("namespace %q: proxy_publish needs a publish proxy", ns.Name)
		}
	}
	return nil
}

// noProxy is the refusal where a namespace needs a proxy the node lacks.
func noProxy(kind string) error {
	return protocol.ErrNotAvailable.With("%s: no backend proxy configured", kind)
}

type requestMetaKey struct{}

// WithRequestMeta returns a copy of ctx carrying what a connect proxy may
// learn of the HTTP request it serves.
func WithRequestMeta(ctx context.Context, m RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, &m)
}

func requestMetaFrom(ctx context.Context) *RequestMeta {
	m, _ := ctx.Value(requestMetaKey{}).(*RequestMeta)
	return m
}
