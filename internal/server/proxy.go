package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/hooks/proxy"
	"github.com/heraldrt/herald/internal/node"
)

// ProxyConfig names the backend endpoints Herald asks instead of checking
// tokens and namespace rules (docs/proxy.md). An empty URL is not asked.
type ProxyConfig struct {
	ConnectURL   string `koanf:"connect_url"`
	RefreshURL   string `koanf:"refresh_url"`
	SubscribeURL string `koanf:"subscribe_url"`
	PublishURL   string `koanf:"publish_url"`
	RPCURL       string `koanf:"rpc_url"`
	// Timeout bounds one backend call.
	Timeout time.Duration `koanf:"timeout"`
	// Headers and Cookies name what the connect endpoint is told of a
	// client's HTTP request; nothing else is forwarded.
	Headers []string `koanf:"headers"`
	Cookies []string `koanf:"cookies"`
}

func defaultProxy() ProxyConfig {
	return ProxyConfig{Timeout: 5 * time.Second, Headers: []string{}, Cookies: []string{}}
}

// validate appends an error for every invalid option to bad.
func (c *ProxyConfig) validate(bad func(key, format string, args ...any), namespaces []node.NamespaceOptions, pong time.Duration) {
	for key, u := range map[string]string{"connect_url": c.ConnectURL, "refresh_url": c.RefreshURL, "subscribe_url": c.SubscribeURL, "publish_url": c.PublishURL, "rpc_url": c.RPCURL} {
		if u == "" {
			continue
		}
		if !proxy.ValidEndpoint(u) {
			bad("proxy."+key, "%q is not an http or https URL", u)
		}
	}
	if c.RefreshURL != "" && c.ConnectURL == "" {
		bad("proxy.refresh_url", "renews sessions the connect proxy opened: set proxy.connect_url too")
	}
	if c.Timeout <= 0 {
		bad("proxy.timeout", "must be positive, got %v", c.Timeout)
	}
	if c.enabled() && c.Timeout >= pong {
		// A connection's commands run in order: its pong waits behind a
		// connect, subscribe or publish that waits on the backend.
		bad("proxy.timeout", "%v must be shorter than pong_timeout (%v), or a slow backend closes connections with 4002", c.Timeout, pong)
	}
	for _, ns := range namespaces {
		if ns.ProxySubscribe && c.SubscribeURL == "" {
			bad("proxy.subscribe_url", "namespace %q sets proxy_subscribe", ns.Name)
		}
		if ns.ProxyPublish && c.PublishURL == "" {
			bad("proxy.publish_url", "namespace %q sets proxy_publish", ns.Name)
		}
	}
}

// enabled reports whether any endpoint is configured.
func (c *ProxyConfig) enabled() bool {
	return c.ConnectURL != "" || c.SubscribeURL != "" || c.PublishURL != "" || c.RPCURL != ""
}

func (c *ProxyConfig) newProxy(s *Server) (*proxy.Proxy, error) {
	return proxy.New(proxy.Config{
		Connect:   c.ConnectURL,
		Refresh:   c.RefreshURL,
		Subscribe: c.SubscribeURL,
		Publish:   c.PublishURL,
		RPC:       c.RPCURL,
		Timeout:   c.Timeout,
		Headers:   c.Headers,
		Cookies:   c.Cookies,
		Logger:    s.log.With("component", "proxy"),
		Observer:  s.metrics.proxyObserver(),
	})
}

// proxyMeta returns what the gate records of a request for the connect
// proxy, or nil when there is none.
func (g *gate) proxyMeta(p *proxy.Proxy) func(*http.Request) node.RequestMeta {
	return func(r *http.Request) node.RequestMeta {
		transport := "http"
		switch path := strings.TrimPrefix(r.URL.Path, "/"); path {
		case "ws":
			transport = "websocket"
		case "sse", "poll", "webrtc":
			transport = path
		}
		var addr string
		if a := clientAddr(r, g.trusted); a.IsValid() {
			addr = a.String()
		}
		return p.RequestMeta(r, transport, addr)
	}
}
