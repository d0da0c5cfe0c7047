package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
)

// Engine names accepted by Config.Engine.
const (
	EngineDurable = "durable"
	EngineMemory  = "memory"
	EngineRedis   = "redis"
	EngineNATS    = "nats"
)

// Config is every option of `herald serve`. Load fills it from a file, the
// environment and flags; Defaults gives the values of options none of them
// set. The koanf tags are the option names in files; environment variables
// are HERALD_ plus the name in upper case, with "__" for a nested ".".
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port, which
	// the startup log line and Server.Addr report.
	Addr string `koanf:"addr"`
	// DataDir holds the durable engine's store. Unused by the memory engine.
	DataDir string `koanf:"data_dir"`
	// Engine is "durable" (history on disk, survives restarts), "memory"
	// (history lost on exit), or "redis" or "nats" for many nodes sharing
	// one broker.
	Engine string `koanf:"engine"`
	// RedisURL and NATSURL locate the broker of the redis and nats engines.
	RedisURL string `koanf:"redis_url"`
	NATSURL  string `koanf:"nats_url"`
	// NATSReplicas is how many JetStream servers store the nats engine's
	// stream and buckets: 1, or 3 or 5 in a NATS cluster.
	NATSReplicas int `koanf:"nats_replicas"`
	// NATSHistoryMaxAge is the age limit of the nats engine's history
	// stream, which removes what channels' own publishes do not purge, such
	// as the history of idle channels. Zero means the longest history_ttl of
	// the namespaces.
	NATSHistoryMaxAge time.Duration `koanf:"nats_history_max_age"`
	// EnginePrefix starts every key, subject and stream name the redis and
	// nats engines use, so clusters can share a broker.
	EnginePrefix string `koanf:"engine_prefix"`
	// NodeHeartbeat is how often a node announces itself to the cluster;
	// a node silent for three heartbeats is taken for gone.
	NodeHeartbeat time.Duration `koanf:"node_heartbeat"`
	// PersonalNamespace, when set, subscribes every authenticated
	// connection to "<namespace>:#<user>", the channel /api/send_user
	// publishes to.
	PersonalNamespace string `koanf:"personal_namespace"`
	// APIKey authorizes calls to the server API (/api/...). Empty closes the
	// API, unless Dev is set, which opens it to anyone.
	APIKey string `koanf:"api_key"`
	// Dev opens every namespace not listed in Namespaces to anyone, lets
	// anonymous clients in, and opens the server API when no APIKey is set.
	// For local development only.
	Dev bool `koanf:"dev"`
	// DemoTicker is how often dev mode publishes a simulated price tick to
	// the demo:ticker channel, the feed of the ticker demo page; 0 turns
	// the feed off. Outside dev mode there is no feed.
	DemoTicker time.Duration `koanf:"demo_ticker"`
	// AllowAnonymous lets clients without a token connect; the namespaces'
	// "anyone" rules then say what they may do. Off by default: a client
	// must bring a token signed with a key from Auth.
	AllowAnonymous bool `koanf:"allow_anonymous"`
	// Name identifies this node in the info API; empty means the host name.
	Name string `koanf:"name"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `koanf:"log_level"`
	LogFormat string `koanf:"log_format"`
	// ShutdownTimeout bounds a graceful shutdown: connections still open
	// after it are closed without waiting.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// DrainSpread is the window over which a shutdown tells clients to
	// reconnect, in a random order, so they reach the remaining nodes
	// spread out; 0 tells them all at once. See drain.go.
	DrainSpread time.Duration `koanf:"drain_spread"`

	// PingInterval, PongTimeout and ConnectTimeout are the WebSocket
	// session heartbeat and connect deadlines (node.Config).
	PingInterval   time.Duration `koanf:"ping_interval"`
	PongTimeout    time.Duration `koanf:"pong_timeout"`
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// MaxQueueBytes bounds a connection's outbound queue; a client that lets
	// it overflow is disconnected as a slow consumer and resumes from history.
	MaxQueueBytes int `koanf:"max_queue_bytes"`
	// MaxChannelsPerConnection bounds subscriptions per connection and
	// channels per SSE stream or poll.
	MaxChannelsPerConnection int `koanf:"max_channels_per_connection"`
	// MaxPublicationSize bounds a publication's data in bytes.
	MaxPublicationSize int `koanf:"max_publication_size"`
	// MaxMessageSize bounds one inbound WebSocket message in bytes.
	MaxMessageSize int `koanf:"max_message_size"`
	// MaxConnectionsPerUser bounds the connections one authenticated user
	// may hold on this node; 0 means no limit.
	MaxConnectionsPerUser int `koanf:"max_connections_per_user"`
	// CommandRate and CommandBurst bound the commands per second a
	// WebSocket connection may send (a token bucket): commands beyond it are
	// refused with code 111, and a connection that keeps sending is closed
	// with 4506.
	CommandRate  float64 `koanf:"command_rate"`
	CommandBurst int     `koanf:"command_burst"`
	// MaxRecoveredPublications bounds what one resubscribe may recover.
	MaxRecoveredPublications int `koanf:"max_recovered_publications"`
	// MaxHistoryLimit caps publications per history call and per poll answer.
	MaxHistoryLimit int `koanf:"max_history_limit"`
	// IdempotencyTTL is how long an idempotency key is remembered.
	IdempotencyTTL time.Duration `koanf:"idempotency_ttl"`
	// WriteTimeout bounds each write to a WebSocket or SSE client.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// PresenceTTL is how long a presence entry outlives its last refresh.
	// Sessions refresh theirs every ping (WebSocket) or keep-alive (SSE), so
	// it must be longer than both.
	PresenceTTL time.Duration `koanf:"presence_ttl"`
	// AllowedOrigins lists the origins (scheme://host[:port]) whose pages may
	// open WebSocket connections, besides the server's own; "*" allows any.
	// Dev mode allows any.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// PprofAddr, when set, serves Go's profiling endpoints on this address,
	// apart from Addr.
	PprofAddr string `koanf:"pprof_addr"`
	// GCTuning lets `herald serve` lower the garbage collector's percent
	// while the process allocates little next to its live heap (package
	// gctune), so held connections do not cost twice their live memory.
	GCTuning bool `koanf:"gc_tuning"`
	// Metrics serves Prometheus metrics at /metrics on Addr.
	Metrics bool `koanf:"metrics"`
	// TokenCookie names a cookie that carries the connection token, for
	// pages whose backend sets one; empty: tokens come only from the
	// Authorization header, the token query parameter or the connect command.
	TokenCookie string `koanf:"token_cookie"`
	// ConnectionRate and ConnectionBurst bound the WebSocket connections
	// and SSE streams one client address may open: a token bucket refilled
	// at ConnectionRate per second holding ConnectionBurst. Zero rate: no limit.
	ConnectionRate  float64 `koanf:"connection_rate"`
	ConnectionBurst int     `koanf:"connection_burst"`
	// TrustedProxies lists the addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For header names the client's address.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers, so slow handshakes cannot hold connections open.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// MaxHeaderBytes bounds a request's headers, URL included.
	MaxHeaderBytes int `koanf:"max_header_bytes"`

	Auth   auth.Config  `koanf:"auth"`
	TLS    TLSConfig    `koanf:"tls"`
	SSE    SSEConfig    `koanf:"sse"`
	TURN   TURNConfig   `koanf:"turn"`
	WebRTC WebRTCConfig `koanf:"webrtc"`
	Admin  AdminConfig  `koanf:"admin"`
	Proxy  ProxyConfig  `koanf:"proxy"`
	// Webhooks send the node's events to HTTP endpoints (docs/webhooks.md).
	Webhooks WebhooksConfig `koanf:"webhooks"`

	// Namespaces configure channels by the part of their name before ':';
	// the one named "" holds channels without a colon. When the list is
	// empty, dev mode opens every namespace, and otherwise only the default
	// namespace exists, closed to clients (the server API can still publish).
	Namespaces []node.NamespaceOptions `koanf:"namespaces"`

	// Logger, when set, is used instead of one built from LogLevel and
	// LogFormat writing to stderr. It cannot come from a file.
	Logger *slog.Logger `koanf:"-"`
	// LogLevelVar is the level Logger filters at, which reloads and
	// /api/log_level change; NewLogger sets it. Nil with a Logger of the
	// caller's: the level cannot change at runtime.
	LogLevelVar *slog.LevelVar `koanf:"-"`
	// Loader reads the configuration again for Server.Reload (herald serve
	// sets it to Load with its file and flags); nil: Reload fails.
	Loader func() (Config, error) `koanf:"-"`
}

// TLSConfig makes the server speak HTTPS, and HTTP/2 to clients that offer
// it, so that many SSE streams from one page share one connection.
type TLSConfig struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// SSEConfig holds the Server-Sent Events options.
type SSEConfig struct {
	// KeepAlive is the interval of keep-alive comments, which defeat proxy
	// idle timeouts and refresh presence.
	KeepAlive time.Duration `koanf:"keep_alive"`
	// Retry is the reconnect delay suggested to EventSource.
	Retry time.Duration `koanf:"retry"`
}

// Defaults returns the configuration used for options that no file,
// environment variable or flag sets.
func Defaults() Config {
	return Config{
		Addr:                     "127.0.0.1:8000",
		DataDir:                  "./herald-data",
		Engine:                   EngineDurable,
		EnginePrefix:             "herald",
		NodeHeartbeat:            2 * time.Second,
		NATSReplicas:             1,
		LogLevel:                 "info",
		LogFormat:                "text",
		GCTuning:                 true,
		Metrics:                  true,
		ShutdownTimeout:          10 * time.Second,
		DrainSpread:              5 * time.Second,
		DemoTicker:               500 * time.Millisecond,
		PingInterval:             25 * time.Second,
		PongTimeout:              10 * time.Second,
		ConnectTimeout:           10 * time.Second,
		MaxQueueBytes:            1 << 20,
		MaxChannelsPerConnection: 128,
		MaxConnectionsPerUser:    100,
		CommandRate:              100,
		CommandBurst:             200,
		MaxPublicationSize:       64 << 10,
		MaxMessageSize:           128 << 10,
		MaxRecoveredPublications: 10000,
		MaxHistoryLimit:          1000,
		IdempotencyTTL:           5 * time.Minute,
		WriteTimeout:             10 * time.Second,
		PresenceTTL:              time.Minute,
		AllowedOrigins:           []string{},
		ConnectionRate:           20,
		ConnectionBurst:          100,
		TrustedProxies:           []string{},
		ReadHeaderTimeout:        10 * time.Second,
		MaxHeaderBytes:           32 << 10,
		SSE: SSEConfig{
			KeepAlive: 15 * time.Second,
			Retry:     2 * time.Second,
		},
		TURN:       defaultTURN(),
		WebRTC:     defaultWebRTC(),
		Webhooks:   defaultWebhooks(),
		Proxy:      defaultProxy(),
		Namespaces: []node.NamespaceOptions{},
	}
}

// messageOverhead is what a WebSocket publish command adds around its data:
// the method, the channel name, an idempotency key and some tags.
const messageOverhead = 1024

// Validate reports every invalid option at once, each error naming the option
// as it is written in a config file.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		bad("addr", "%q is not host:port", c.Addr)
	}
	switch c.Engine {
	case EngineDurable:
		if c.DataDir == "" {
			bad("data_dir", "required by the durable engine")
		}
	case EngineMemory:
	case EngineRedis:
		if !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") && !strings.HasPrefix(c.RedisURL, "unix://") {
			bad("redis_url", "%q is not a redis://, rediss:// or unix:// URL, required by the redis engine", c.RedisURL)
		}
	case EngineNATS:
		if c.NATSURL == "" {
			bad("nats_url", "required by the nats engine")
		}
		if c.NATSReplicas != 1 && c.NATSReplicas != 3 && c.NATSReplicas != 5 {
			bad("nats_replicas", "%d is not 1, 3 or 5", c.NATSReplicas)
		}
		if longest := c.longestHistoryTTL(); c.NATSHistoryMaxAge < 0 || c.NATSHistoryMaxAge > 0 && c.NATSHistoryMaxAge < longest {
			bad("nats_history_max_age", "%v must be 0 or at least the longest history_ttl of the namespaces (%v), or history is removed before its age",
				c.NATSHistoryMaxAge, longest)
		}
	default:
		bad("engine", "%q is not %q, %q, %q or %q", c.Engine, EngineDurable, EngineMemory, EngineRedis, EngineNATS)
	}
	if (c.Engine == EngineRedis || c.Engine == EngineNATS) && !validPrefix(c.EnginePrefix) {
		bad("engine_prefix", "%q must be 1-64 letters, digits, '-' or '_'", c.EnginePrefix)
	}
	if strings.ContainsAny(c.APIKey, " \t\r\n") {
		bad("api_key", "must not contain whitespace: it is sent in an HTTP header")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "%q is not text or json", c.LogFormat)
	}
	if c.DrainSpread < 0 {
		bad("drain_spread", "must be 0 (all at once) or a positive duration, got %v", c.DrainSpread)
	}
	if c.DemoTicker < 0 {
		bad("demo_ticker", "must be 0 (off) or a positive duration, got %v", c.DemoTicker)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"shutdown_timeout", c.ShutdownTimeout},
		{"ping_interval", c.PingInterval},
		{"pong_timeout", c.PongTimeout},
		{"connect_timeout", c.ConnectTimeout},
		{"idempotency_ttl", c.IdempotencyTTL},
		{"write_timeout", c.WriteTimeout},
		{"presence_ttl", c.PresenceTTL},
		{"node_heartbeat", c.NodeHeartbeat},
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"sse.keep_alive", c.SSE.KeepAlive},
		{"sse.retry", c.SSE.Retry},
	} {
		if d.v <= 0 {
			bad(d.key, "must be a positive duration, got %v", d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"max_queue_bytes", c.MaxQueueBytes},
		{"max_channels_per_connection", c.MaxChannelsPerConnection},
		{"max_publication_size", c.MaxPublicationSize},
		{"max_message_size", c.MaxMessageSize},
		{"max_recovered_publications", c.MaxRecoveredPublications},
		{"max_history_limit", c.MaxHistoryLimit},
		{"command_burst", c.CommandBurst},
		{"max_header_bytes", c.MaxHeaderBytes},
	} {
		if n.v <= 0 {
			bad(n.key, "must be positive, got %d", n.v)
		}
	}
	if c.ConnectionRate < 0 {
		bad("connection_rate", "must not be negative, got %g", c.ConnectionRate)
	}
	if c.ConnectionRate > 0 && c.ConnectionBurst <= 0 {
		bad("connection_burst", "must be positive when connection_rate is set, got %d", c.ConnectionBurst)
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		bad("trusted_proxies", "%v", err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	c.TURN.validate(bad, c.TLS.CertFile != "")
	c.WebRTC.validate(bad)
	c.Webhooks.validate(bad)
	c.Admin.validate(bad, c.Auth.HMACSecret)
	validatePersonalNamespace(bad, c.PersonalNamespace)
	c.Proxy.validate(bad, c.Namespaces, c.PongTimeout)
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxConnectionsPerUser < 0 {
		bad("max_connections_per_user", "must not be negative, got %d", c.MaxConnectionsPerUser)
	}
	if c.CommandRate <= 0 {
		bad("command_rate", "must be positive, got %g", c.CommandRate)
	}
	if c.MaxPublicationSize > 0 && c.MaxMessageSize < c.MaxPublicationSize+messageOverhead {
		bad("max_message_size", "%d cannot carry a publish command of max_publication_size %d: make it at least %d",
			c.MaxMessageSize, c.MaxPublicationSize, c.MaxPublicationSize+messageOverhead)
	}
	if c.MaxQueueBytes > 0 && c.MaxQueueBytes < c.MaxPublicationSize {
		bad("max_queue_bytes", "%d cannot hold one publication of max_publication_size %d", c.MaxQueueBytes, c.MaxPublicationSize)
	}
	if c.PresenceTTL > 0 && (c.PresenceTTL <= c.PingInterval || c.PresenceTTL <= c.SSE.KeepAlive) {
		bad("presence_ttl", "%v must exceed ping_interval (%v) and sse.keep_alive (%v), which refresh presence, or present clients expire",
			c.PresenceTTL, c.PingInterval, c.SSE.KeepAlive)
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("allowed_origins", "%q is not \"*\" or scheme://host[:port]", o)
		}
	}
	seen := make(map[string]bool, len(c.Namespaces))
	for i, ns := range c.Namespaces {
		validateNamespaceName(bad, i, ns.Name)
		if err := ns.Validate(); err != nil {
			bad(fmt.Sprintf("namespaces[%d]", i), "%v", err)
		}
		if seen[ns.Name] {
			bad(fmt.Sprintf("namespaces[%d]", i), "namespace %q defined twice", ns.Name)
		}
		seen[ns.Name] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return nil
}

// namespaces is the namespace list the node gets: the configured one, or
// when there is none outside dev mode, a closed default namespace, so that
// a server started without configuration exposes nothing to clients.
func (c *Config) namespaces() []node.NamespaceOptions {
	if len(c.Namespaces) == 0 && !c.Dev {
		return c.Admin.withNamespace([]node.NamespaceOptions{{Name: ""}})
	}
	return c.Admin.withNamespace(c.Namespaces)
}

// defaultNATSHistoryMaxAge is the nats engine's stream age limit when no
// namespace stores history: what is stored then is only the epoch markers of
// history reads.
const defaultNATSHistoryMaxAge = 24 * time.Hour

// natsHistoryMaxAge is the nats engine's Config.HistoryMaxAge: the configured
// limit, or the longest history_ttl, so that every publication can live its
// namespace's age and none is stored longer.
func (c *Config) natsHistoryMaxAge() time.Duration {
	if c.NATSHistoryMaxAge > 0 {
		return c.NATSHistoryMaxAge
	}
	if longest := c.longestHistoryTTL(); longest > 0 {
		return longest
	}
	return defaultNATSHistoryMaxAge
}

// longestHistoryTTL is the longest history_ttl of the namespaces clients can
// use, dev mode's default namespace included.
func (c *Config) longestHistoryTTL() time.Duration {
	var longest time.Duration
	if c.Dev {
		longest = node.DevNamespace("").HistoryTTL
	}
	for _, ns := range c.Namespaces {
		longest = max(longest, ns.HistoryTTL)
	}
	return longest
}

// validPrefix accepts what is safe in Redis keys, NATS subjects and
// JetStream stream names alike.
func validPrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
