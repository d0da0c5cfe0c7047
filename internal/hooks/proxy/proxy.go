// Package proxy asks the application's backend over HTTP to authenticate
// clients, renew their sessions, allow subscriptions and publications, and
// answer RPCs: the node's proxy interfaces (node.Proxies) as JSON POSTs to
// configured endpoints. docs/proxy.md describes the requests and replies.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// Config configures a Proxy. Each endpoint is an http or https URL; an
// empty one is not asked.
type Config struct {
	Connect, Refresh, Subscribe, Publish, RPC string
	// Timeout bounds one backend call, connecting included (5s).
	Timeout time.Duration
	// Headers and Cookies name the headers and cookies of a client's HTTP
	// request forwarded to the connect endpoint; nothing else is.
	Headers []string
	Cookies []string
	// MaxResponseBytes bounds a backend's reply (1 MiB); a longer one is
	// treated as no answer.
	MaxResponseBytes int64
	Logger           *slog.Logger
	// Observer, when not nil, is told of every backend call.
	Observer Observer
}

// Observer is told of every backend call: its kind (connect, refresh,
// subscribe, publish or rpc), its result (ResultOK, ResultError or
// ResultUnavailable) and how long it took. It is called on the caller's
// goroutine, so it must be quick.
type Observer interface {
	ProxyCall(kind, result string, took time.Duration)
}

// The results an Observer is told of.
const (
	// ResultOK: the backend answered with a result.
	ResultOK = "ok"
	// ResultError: the backend refused, with an error or a disconnect.
	ResultError = "error"
	// ResultUnavailable: the backend did not answer in time, or not with a
	// reply; clients get error 118.
	ResultUnavailable = "unavailable"
)

// Proxy calls a backend's endpoints. Create it with New and release its
// idle connections with Close.
type Proxy struct {
	cfg     Config
	client  *http.Client
	headers []string
	cookies map[string]bool
}

// New checks the endpoints and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	for name, u := range map[string]string{"connect": cfg.Connect, "refresh": cfg.Refresh, "subscribe": cfg.Subscribe, "publish": cfg.Publish, "rpc": cfg.RPC} {
		if u == "" {
			continue
		}
		if !ValidEndpoint(u) {
			return nil, fmt.Errorf("proxy: %s endpoint %q is not an http or https URL", name, u)
		}
	}
	if cfg.Refresh != "" && cfg.Connect == "" {
		return nil, errors.New("proxy: a refresh endpoint renews sessions the connect endpoint opened; it needs one")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, cookies: make(map[string]bool, len(cfg.Cookies))}
	for _, h := range cfg.Headers {
		p.headers = append(p.headers, textproto.CanonicalMIMEHeaderKey(h))
	}
	for _, c := range cfg.Cookies {
		p.cookies[c] = true
	}
	p.client = &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			// Every client action may become a backend call: keep enough
			// connections warm for bursts, and bound them so a slow backend
			// cannot take every file descriptor.
			MaxIdleConnsPerHost:   64,
			MaxConnsPerHost:       512,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
			ForceAttemptHTTP2:     true,
		},
		// A backend answers; it does not send the server elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// ValidEndpoint reports whether New accepts u as an endpoint: an absolute
// http or https URL.
func ValidEndpoint(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

// Proxies returns the node's view of the configured endpoints.
func (p *Proxy) Proxies() node.Proxies {
	var ps node.Proxies
	if p.cfg.Connect != "" {
		ps.Connect = connectProxy{p}
	}
	if p.cfg.Refresh != "" {
		ps.Refresh = refreshProxy{p}
	}
	if p.cfg.Subscribe != "" {
		ps.Subscribe = subscribeProxy{p}
	}
	if p.cfg.Publish != "" {
		ps.Publish = publishProxy{p}
	}
	if p.cfg.RPC != "" {
		ps.RPC = rpcProxy{p}
	}
	return ps
}

// RequestMeta picks from r what the connect endpoint is told: the
// configured headers and cookies, the transport and the client's address.
func (p *Proxy) RequestMeta(r *http.Request, transport, remoteAddr string) node.RequestMeta {
	m := node.RequestMeta{Transport: transport, RemoteAddr: remoteAddr}
	for _, h := range p.headers {
		if v := r.Header.Get(h); v != "" {
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(p.headers))
			}
			m.Headers[h] = v
		}
	}
	if len(p.cookies) > 0 {
		for _, c := range r.Cookies() {
			if p.cookies[c.Name] {
				if m.Cookies == nil {
					m.Cookies = make(map[string]string, len(p.cookies))
				}
				m.Cookies[c.Name] = c.Value
			}
		}
	}
	return m
}

// Close releases idle connections to the backend.
func (p *Proxy) Close() { p.client.CloseIdleConnections() }

// reply is every endpoint's answer: exactly one member is set.
type reply struct {
	Result     json.RawMessage       `json:"result"`
	Error      *node.ProxyError      `json:"error"`
	Disconnect *node.ProxyDisconnect `json:"disconnect"`
}

// call POSTs req as JSON to the endpoint of kind and decodes the reply's
// result into res, telling the Observer how it went.
func (p *Proxy) call(ctx context.Context, kind, endpoint string, req, res any) error {
	if p.cfg.Observer == nil {
		return p.post(ctx, endpoint, req, res)
	}
	start := time.Now()
	err := p.post(ctx, endpoint, req, res)
	result := ResultOK
	var pe *node.ProxyError
	var pd *node.ProxyDisconnect
	switch {
	case errors.As(err, &pe), errors.As(err, &pd):
		result = ResultError
	case err != nil:
		result = ResultUnavailable
	}
	p.cfg.Observer.ProxyCall(kind, result, time.Since(start))
	return err
}

// post POSTs req as JSON to endpoint and decodes the reply's result into
// res. A refusal is a *node.ProxyError or *node.ProxyDisconnect; anything
// else means the backend did not answer as it should.
func (p *Proxy) post(ctx context.Context, endpoint string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("proxy: encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(hr)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("proxy: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy: %s answered %s", endpoint, resp.Status)
	}
	if int64(len(b)) > p.cfg.MaxResponseBytes {
		return fmt.Errorf("proxy: %s answered more than %d bytes", endpoint, p.cfg.MaxResponseBytes)
	}
	var rep reply
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("proxy: %s answered with a body that is not a reply: %w", endpoint, err)
	}
	switch {
	case rep.Disconnect != nil:
		return rep.Disconnect
	case rep.Error != nil:
		return rep.Error
	case len(rep.Result) == 0 || string(rep.Result) == "null":
		return fmt.Errorf("proxy: %s answered with neither result, error nor disconnect", endpoint)
	}
	if err := json.Unmarshal(rep.Result, res); err != nil {
		return fmt.Errorf("proxy: %s answered with a result that does not fit: %w", endpoint, err)
	}
	return nil
}

// One type per kind, so a Proxy with only some endpoints hands the node
// only those interfaces.
type (
	connectProxy   struct{ p *Proxy }
	refreshProxy   struct{ p *Proxy }
	subscribeProxy struct{ p *Proxy }
	publishProxy   struct{ p *Proxy }
	rpcProxy       struct{ p *Proxy }
)

var (
	_ node.ConnectProxy   = connectProxy{}
	_ node.RefreshProxy   = refreshProxy{}
	_ node.SubscribeProxy = subscribeProxy{}
	_ node.PublishProxy   = publishProxy{}
	_ node.RPCProxy       = rpcProxy{}
)

func (c connectProxy) ProxyConnect(ctx context.Context, req node.ConnectProxyRequest) (res node.ConnectProxyResult, err error) {
	err = c.p.call(ctx, "connect", c.p.cfg.Connect, req, &res)
	return res, err
}

func (c refreshProxy) ProxyRefresh(ctx context.Context, req node.RefreshProxyRequest) (res node.RefreshProxyResult, err error) {
	err = c.p.call(ctx, "refresh", c.p.cfg.Refresh, req, &res)
	return res, err
}

func (c subscribeProxy) ProxySubscribe(ctx context.Context, req node.SubscribeProxyRequest) (res node.SubscribeProxyResult, err error) {
	err = c.p.call(ctx, "subscribe", c.p.cfg.Subscribe, req, &res)
	return res, err
}

func (c publishProxy) ProxyPublish(ctx context.Context, req node.PublishProxyRequest) (res node.PublishProxyResult, err error) {
	err = c.p.call(ctx, "publish", c.p.cfg.Publish, req, &res)
	return res, err
}

func (c rpcProxy) ProxyRPC(ctx context.Context, req node.RPCProxyRequest) (res node.RPCProxyResult, err error) {
	err = c.p.call(ctx, "rpc", c.p.cfg.RPC, req, &res)
	return res, err
}
