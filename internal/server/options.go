package server

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/pflag"
)

// option describes one Config option for humans: generated config files,
// flag help and the environment mapping all come from this table, and a test
// checks it lists exactly Config's koanf keys.
type option struct {
	// key is the option's name in a file; "." separates a section.
	key string
	// flag is the `herald serve` flag that sets it, if any.
	flag string
	help string
}

// envPrefix starts every environment variable Load reads.
const envPrefix = "HERALD_"

// envConfigFile is the environment variable naming the config file. It is
// read by the command line, not by Load, which only skips it.
const envConfigFile = envPrefix + "CONFIG"

// optionTable lists every option in the order generated files show them.
func optionTable() []option {
	return []option{
		{key: "addr", flag: "addr", help: "Address to listen on, host:port. Port 0 picks a free port; the startup log line reports it."},
		{key: "data_dir", flag: "data-dir", help: "Directory of the durable engine's store. Unused by the memory engine."},
		{key: "engine", flag: "engine", help: `Storage engine: "durable" keeps history on disk across restarts; "memory" loses it on exit; "redis" and "nats" let many nodes share one broker (see docs/scaling.md).`},
		{key: "redis_url", flag: "redis-url", help: "Redis of the redis engine: redis://[user:pass@]host:port/db, rediss:// for TLS, ?master_set=NAME with sentinel addresses for Sentinel, several addr= parameters for Cluster."},
		{key: "nats_url", flag: "nats-url", help: "NATS server(s) of the nats engine, with JetStream enabled: nats://host:4222, comma-separated for several."},
		{key: "nats_replicas", help: "JetStream replicas of the nats engine's stream and buckets: 1, or 3 or 5 in a NATS cluster (an acknowledgement then means a quorum stored it)."},
		{key: "nats_history_max_age", help: "Age limit of the nats engine's JetStream history stream: it removes what channels' publishes do not purge, such as idle channels' history (which then start a new epoch). At least the longest history_ttl; 0: the longest history_ttl."},
		{key: "engine_prefix", help: "Prefix of every Redis key, NATS subject and JetStream stream the engine uses, so several clusters can share one broker."},
		{key: "node_heartbeat", help: "How often a node announces itself to the others through the engine; a node silent for three heartbeats is gone from the info API."},
		{key: "personal_namespace", help: `When set, every authenticated connection is subscribed to "<namespace>:#<user>", which /api/send_user publishes to; the namespace must exist.`},
		{key: "api_key", flag: "api-key", help: `Key for the server API (/api/...), sent as "Authorization: apikey <key>". Empty disables the API, except in dev mode, where it is open to anyone.`},
		{key: "dev", flag: "dev", help: "Development mode: namespaces not listed below are open to anyone, with history and presence, and the server API needs no key when api_key is empty. Never in production."},
		{key: "demo_ticker", help: "Dev mode only: how often a simulated price tick is published to demo:ticker, the ticker demo's feed; 0 turns it off."},
		{key: "allow_anonymous", help: `Let clients without a token connect; the namespaces' "anyone" rules then say what they may do. Dev mode turns it on.`},
		{key: "name", help: "Name of this node in the info API. Empty means the host name."},
		{key: "log_level", flag: "log-level", help: "Log level: debug, info, warn or error."},
		{key: "log_format", help: "Log format: text or json."},
		{key: "shutdown_timeout", help: "How long a graceful shutdown waits for clients to leave before closing their connections."},
		{key: "drain_spread", help: "Window over which a graceful shutdown tells clients to reconnect, in a random order, so they reach the remaining nodes spread out; at most three quarters of shutdown_timeout is used. 0: all at once."},
		{key: "ping_interval", help: "How often WebSocket clients are pinged; they must answer within pong_timeout or are disconnected."},
		{key: "pong_timeout", help: "How long a WebSocket client may take to answer a ping."},
		{key: "connect_timeout", help: "How long a new WebSocket connection may take to send its connect command."},
		{key: "max_queue_bytes", help: "Bytes queued for one slow client before it is disconnected (it then resumes from history)."},
		{key: "max_channels_per_connection", help: "Subscriptions per connection, and channels per SSE stream or poll."},
		{key: "max_connections_per_user", help: "Connections one authenticated user may hold on this node (error 106, close code 4503 beyond it); 0: no limit."},
		{key: "command_rate", help: "Commands per second a WebSocket connection may send, on average (error 111 beyond it)."},
		{key: "command_burst", help: "Commands a WebSocket connection may send at once above command_rate; one that keeps sending while refused is closed with 4506."},
		{key: "max_publication_size", help: "Largest publication data accepted, in bytes."},
		{key: "max_message_size", help: "Largest inbound WebSocket message, in bytes; at least max_publication_size + 1024."},
		{key: "max_recovered_publications", help: "Most publications one resubscribe may recover; beyond it the client is told to reload its state."},
		{key: "max_history_limit", help: "Most publications returned by one history call or poll answer per channel."},
		{key: "idempotency_ttl", help: "How long an idempotency key is remembered, so a retried publish is not stored twice."},
		{key: "write_timeout", help: "How long one write to a WebSocket or SSE client may take before the client is dropped."},
		{key: "presence_ttl", help: "How long a presence entry lives without refresh; must exceed ping_interval and sse.keep_alive."},
		{key: "allowed_origins", help: `Origins (scheme://host[:port]) whose pages may use the client endpoints (WebSocket, SSE, polling, client HTTP calls, with CORS) besides this server's own; "*" allows any. In the environment: comma-separated.`},
		{key: "token_cookie", help: "Name of a cookie carrying the connection token, for pages whose backend sets one. Empty: tokens come from the Authorization header, the token query parameter or the connect command."},
		{key: "connection_rate", help: "New WebSocket connections and SSE streams per second one client address may open, on average (error 111, HTTP 429 beyond it). 0: no limit."},
		{key: "connection_burst", help: "New connections one client address may open at once before connection_rate applies."},
		{key: "trusted_proxies", help: "Addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client's address. In the environment: comma-separated."},
		{key: "read_header_timeout", help: "How long a client may take to send a request's headers; bounds slow handshakes."},
		{key: "max_header_bytes", help: "Largest request header block, URL and cookies included, in bytes."},
		{key: "metrics", help: "Serve Prometheus metrics at /metrics on addr: connections by transport, channels, subscriptions, publications in and out, engine publish latency, disconnects by code, refused tokens and permissions, and the Go runtime's and process's own. Keep /metrics away from the public at the proxy. false: no /metrics."},
		{key: "gc_tuning", help: "Size the Go garbage collector's headroom to what the server allocated in the last 10 s, between 10% and GOGC (100 by default) of the live heap, so idle connections do not cost twice their live memory; it costs at most one mark of the live heap every 10 s. false: GOGC alone."},
		{key: "pprof_addr", flag: "pprof-addr", help: "Address for Go's profiling endpoints (/debug/pprof/), on a listener of their own; keep it on loopback. Empty: off."},
		{key: "auth.hmac_secret", help: "Secret that verifies HS256, HS384 and HS512 connection and subscription tokens; at least 32 bytes. Prefer the environment variable."},
		{key: "auth.public_key", help: "PEM public key (RSA of 2048 bits or more, ECDSA P-256/P-384/P-521, or Ed25519) that verifies RS*, ES* or EdDSA tokens."},
		{key: "auth.public_key_file", help: "File holding auth.public_key instead."},
		{key: "auth.jwks_url", help: "JSON Web Key Set URL whose RSA, EC and Ed25519 keys verify tokens; fetched at start, every auth.jwks_refresh and when a token names an unknown kid."},
		{key: "auth.jwks_refresh", help: "How often the JWKS is fetched again; 0: every hour."},
		{key: "auth.audience", help: "When set, tokens must name it in aud."},
		{key: "auth.issuer", help: "When set, tokens must have it as iss."},
		{key: "auth.leeway", help: "Clock skew allowed when checking a token's exp, nbf and iat."},
		{key: "tls.cert_file", help: "PEM certificate chain: with tls.key_file, the server speaks HTTPS and HTTP/2."},
		{key: "tls.key_file", help: "PEM private key of tls.cert_file."},
		{key: "sse.keep_alive", help: "Interval of SSE keep-alive comments, which stop proxies from closing idle streams."},
		{key: "sse.retry", help: "Reconnect delay suggested to SSE clients (EventSource)."},
		{key: "turn.enabled", help: `Embedded STUN/TURN server for WebRTC peers: "auto" runs it in dev mode only (a busy port is then a warning), "on" always, "off" never.`},
		{key: "turn.addr", flag: "turn-addr", help: "IP:port the STUN/TURN server listens on, UDP and TCP alike (3478 is the standard port). Port 0 picks a free one."},
		{key: "turn.public_ip", help: "Address peers reach the relay at, carried in relayed candidates; required when turn.addr is 0.0.0.0 or [::]. Empty: turn.addr's host."},
		{key: "turn.tls_addr", help: "Also serve TURN over TLS (turns:) on this IP:port, with tls.cert_file. Empty: off."},
		{key: "turn.secret", help: "Secret signing the short-lived TURN credentials (username expiry:user, HMAC password); at least 32 bytes. Empty: random per process, fine unless TURN sits behind a load balancer."},
		{key: "turn.realm", help: "Realm of the TURN server's authentication."},
		{key: "turn.credential_ttl", help: "How long TURN credentials handed to a client work."},
		{key: "turn.allowed_peers", help: "Loopback, private or link-local prefixes the relay may reach anyway (it refuses them otherwise, so it cannot be turned on the server's own network). Empty in dev mode: loopback and private networks. In the environment: comma-separated."},
		{key: "turn.max_allocations_per_user", help: "Relay allocations one user may hold at once; 0: no limit."},
		{key: "turn.user_bitrate", help: "Bytes per second one user's relay allocations may carry, both directions together; beyond it packets are dropped. 0: no limit."},
		{key: "webrtc.data_channels", help: "Serve the WebRTC data-channel transport at POST /webrtc: clients open a peer connection to the server and speak the Herald protocol over its data channels."},
		{key: "webrtc.public_ips", help: "Addresses clients reach this node at when it sits behind a 1:1 NAT; they replace its interfaces' addresses in WebRTC answers. In the environment: comma-separated."},
		{key: "webrtc.udp_port_min", help: "Lowest UDP port of the data-channel transport's peer connections, for firewalls; 0 with udp_port_max 0: any ephemeral port."},
		{key: "webrtc.udp_port_max", help: "Highest UDP port of the data-channel transport's peer connections."},
		{key: "proxy.connect_url", help: "Backend endpoint that authenticates clients bringing no token (docs/proxy.md): Herald POSTs the client's forwarded headers and cookies, the backend answers with its user. Empty: tokens only."},
		{key: "proxy.refresh_url", help: "Backend endpoint asked, when a session the connect endpoint opened reaches its expire_at, whether it may go on. Empty: such sessions are asked for a token, like others."},
		{key: "proxy.subscribe_url", help: "Backend endpoint that allows or refuses subscriptions in namespaces with proxy_subscribe."},
		{key: "proxy.publish_url", help: "Backend endpoint that allows, refuses or rewrites client publications in namespaces with proxy_publish."},
		{key: "proxy.rpc_url", help: "Backend endpoint that answers clients' rpc commands (and POST /rpc). Empty: rpc is refused with error 108."},
		{key: "proxy.timeout", help: "How long one backend call may take; beyond it the client gets error 118 (backend unavailable). Shorter than pong_timeout."},
		{key: "proxy.headers", help: "Names of the client request headers forwarded to the connect endpoint; no other header is. In the environment: comma-separated."},
		{key: "proxy.cookies", help: "Names of the client request cookies forwarded to the connect endpoint; no other cookie is. In the environment: comma-separated."},
		{key: "admin.enabled", help: "Serve the admin web UI at /admin/ and the admin API at /admin/api/ (see docs/admin.md); both need admin.password and admin.secret."},
		{key: "admin.password", help: "Password of the admin UI and API login, at least 8 characters. Prefer the environment variable."},
		{key: "admin.secret", help: "Secret signing admin session tokens (HS256), at least 32 bytes and not auth.hmac_secret. Prefer the environment variable."},
		{key: "webhooks.endpoints", help: `Receivers of the node's events, each {url, secret (16+ bytes, keys the X-Herald-Signature HMAC), events (types; empty: all), channels (glob patterns; empty: all)}; see docs/webhooks.md. Empty: no webhooks. In the environment: a JSON array.`},
		{key: "webhooks.dir", help: "Directory of the webhook outbox. Empty: <data_dir>/webhooks, or memory (lost on exit) with the memory engine."},
		{key: "webhooks.batch_size", help: "Most events in one webhook request."},
		{key: "webhooks.batch_bytes", help: "Most bytes of events in one webhook request; a larger event goes alone."},
		{key: "webhooks.flush_interval", help: "How long an idle webhook endpoint waits for more events before sending what it has."},
		{key: "webhooks.timeout", help: "How long one webhook request may take; a timeout is a failure, retried."},
		{key: "webhooks.retry_min", help: "Backoff after a first failed webhook request; it doubles per failure (with full jitter) up to webhooks.retry_max."},
		{key: "webhooks.retry_max", help: "Longest backoff between webhook attempts."},
		{key: "webhooks.max_events", help: "Most events the webhook outbox holds; beyond it events are refused and reported by an overflow event."},
		{key: "webhooks.max_bytes", help: "Most bytes the webhook outbox holds; beyond it events are refused and reported by an overflow event."},
		{key: "namespaces", help: `Channel options by namespace, the part of a channel name before ':'; the namespace "" holds channels without a colon. Access values: nobody, authenticated, anyone (unset denies). Empty list: dev mode opens everything; otherwise only a closed default namespace exists. In the environment: a JSON array.`},
	}
}

// envName is the environment variable of a config key: "sse.keep_alive" is
// HERALD_SSE__KEEP_ALIVE.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// keyOfEnv is envName's inverse; it does not check that the key exists.
func keyOfEnv(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "__", ".")
}

// field returns the field of cfg that key names, following koanf tags.
func field(cfg *Config, key string) (reflect.Value, bool) {
	v := reflect.ValueOf(cfg).Elem()
	for _, part := range strings.Split(key, ".") {
		f, ok := fieldByTag(v.Type(), part)
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.Index)
	}
	return v, true
}

// fieldByTag finds the struct field of t whose koanf tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	// "-" marks fields that no source may set.
	if t.Kind() != reflect.Struct || name == "-" {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("koanf") == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// AddFlags defines on fs the `herald serve` flags that set options, with the
// defaults of Defaults. Load reads back only the flags the user set, so the
// defaults shown here never override a file or the environment.
func AddFlags(fs *pflag.FlagSet) {
	def := Defaults()
	for _, o := range optionTable() {
		if o.flag == "" {
			continue
		}
		v, _ := field(&def, o.key)
		usage := fmt.Sprintf("%s (env %s)", o.help, envName(o.key))
		switch v.Kind() {
		case reflect.String:
			fs.String(o.flag, v.String(), usage)
		case reflect.Bool:
			fs.Bool(o.flag, v.Bool(), usage)
		default:
			panic(fmt.Sprintf("server: no flag type for option %s of kind %s", o.key, v.Kind()))
		}
	}
}
