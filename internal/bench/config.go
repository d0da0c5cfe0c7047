package bench

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Transports a subscriber can use.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
	TransportLongPoll  = "longpoll"
)

// Scenarios.
const (
	ScenarioIdle   = "idle"
	ScenarioFanout = "fanout"
	ScenarioSpread = "spread"
	ScenarioChurn  = "churn"
)

// Bounds that keep every run finite whatever the flags say.
const (
	// MaxDuration caps --duration, and MaxWarmup --warmup.
	MaxDuration = time.Hour
	MaxWarmup   = 10 * time.Minute
	// MaxConnections caps the connections of one run.
	MaxConnections = 1_000_000
	// DefaultPerProcess is the most connections one process holds when
	// --procs is left at 0: under this machine's hard limit of 20,000 open
	// files, with room for the publisher and the runtime.
	DefaultPerProcess = 15_000
	// perSource is the most connections given one source address when
	// --sources is left at 0, under the ~28,000 ports of the ephemeral range.
	perSource = 20_000
)

// Config is one run of a scenario. Zero fields take the defaults below.
type Config struct {
	// Server is the base URL of the server; it must be a loopback address.
	// Default http://127.0.0.1:8000.
	Server string
	// SubscribeServers, when set, are the base URLs (loopback) of the nodes
	// the subscribers connect to, worker process i to node i mod len: a
	// cluster run, with the publisher on Server. Procs is raised to at
	// least one per node.
	SubscribeServers []string
	// APIKey authorizes publishing through the server API.
	APIKey string
	// Transport is websocket (default), sse or longpoll.
	Transport string
	// Connections is the number of subscriber connections.
	Connections int
	// Channels is the number of channels the connections subscribe to,
	// connection i to channel i mod Channels. Each scenario sets its own:
	// one for fanout, one per connection for spread; idle and churn take
	// it from here (0: one per connection).
	Channels int
	// Rate is publications per second (fanout, spread, churn).
	Rate float64
	// ChurnRate is connections replaced per second (churn).
	ChurnRate float64
	// Duration is the measured time; Warmup runs before it, publishing but
	// not measuring. Idle holds its connections for Duration.
	Duration time.Duration
	Warmup   time.Duration
	// Drain bounds the wait for deliveries still in flight after the last
	// publication. Default 5s.
	Drain time.Duration
	// PayloadSize is the size of each publication's data in bytes.
	// Default 64 (at least what the fixed fields need).
	PayloadSize int
	// Procs is the number of worker processes holding the connections; 0
	// picks enough for DefaultPerProcess each, and 1 holds them in this
	// process.
	Procs int
	// Sources is the number of loopback source addresses; 0 picks enough
	// for 20,000 connections each.
	Sources int
	// ConnectConcurrency bounds handshakes in flight per process.
	// Default 256.
	ConnectConcurrency int
	// ConnectTimeout bounds the connect phase. Default 2m.
	ConnectTimeout time.Duration
	// PollTimeout is the long-poll timeout. Default 30s.
	PollTimeout time.Duration
	// Batch chooses how a backlog is published: "auto" (default) sends
	// whatever queued while a call was in flight as one /api/batch call
	// when the server has that endpoint, one publication per /api/publish
	// call otherwise; "on" requires /api/batch and uses it for every call;
	// "off" uses /api/publish only.
	Batch string
	// Publishers is the number of publishing loops, each with its own
	// connection and a share of the channels; a loop does not wait for one
	// call's answer before its next (pipeConn), so one loop carries any rate
	// the server takes in batches, and fewer loops mean fewer, larger calls.
	// More help only with Batch "off" at high rates. Default 1 (at most one
	// per channel).
	Publishers int
	// ServerPID, when set, is the server's process id, whose RSS and CPU
	// time the report includes.
	ServerPID int
	// Prefix names the channels (Prefix + index). Default "bench:<random>-",
	// fresh for every run.
	Prefix string
	// Executable and WorkerArgs start a worker process: Executable
	// WorkerArgs... must run RunWorker. Defaults: os.Executable() and
	// ["bench", "worker"].
	Executable string
	WorkerArgs []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (c *Config) setDefaults(scenario string) error {
	if c.Server == "" {
		c.Server = "http://127.0.0.1:8000"
	}
	if _, err := serverAddr(c.Server); err != nil {
		return err
	}
	for _, s := range c.SubscribeServers {
		if _, err := serverAddr(s); err != nil {
			return err
		}
	}
	if c.Transport == "" {
		c.Transport = TransportWebSocket
	}
	switch c.Transport {
	case TransportWebSocket, TransportSSE, TransportLongPoll:
	default:
		return fmt.Errorf("bench: unknown transport %q (websocket, sse or longpoll)", c.Transport)
	}
	if c.Connections <= 0 || c.Connections > MaxConnections {
		return fmt.Errorf("bench: connections must be from 1 to %d, got %d", MaxConnections, c.Connections)
	}
	switch scenario {
	case ScenarioFanout:
		c.Channels = 1
	case ScenarioSpread:
		c.Channels = c.Connections
	default:
		if c.Channels <= 0 || c.Channels > c.Connections {
			c.Channels = c.Connections
		}
	}
	if scenario != ScenarioIdle && c.Rate <= 0 {
		return errors.New("bench: rate must be above zero")
	}
	if scenario != ScenarioChurn {
		c.ChurnRate = 0
	} else if c.ChurnRate <= 0 {
		return errors.New("bench: churn rate must be above zero")
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration > MaxDuration || c.Warmup > MaxWarmup || c.Warmup < 0 {
		return fmt.Errorf("bench: duration is capped at %v and warm-up at %v", MaxDuration, MaxWarmup)
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	c.Drain = min(c.Drain, 5*time.Minute)
	if c.PayloadSize <= 0 {
		c.PayloadSize = 64
	}
	if c.PayloadSize > 1<<20 {
		return errors.New("bench: payload size is capped at 1 MiB")
	}
	if c.Procs <= 0 {
		c.Procs = (c.Connections + DefaultPerProcess - 1) / DefaultPerProcess
	}
	c.Procs = min(max(c.Procs, len(c.SubscribeServers)), c.Connections, 64)
	if c.Sources <= 0 {
		c.Sources = (c.Connections + perSource - 1) / perSource
	}
	c.Sources = min(c.Sources, 250)
	if c.ConnectConcurrency <= 0 {
		c.ConnectConcurrency = 256
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 2 * time.Minute
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = 30 * time.Second
	}
	if c.PollTimeout < time.Second || c.PollTimeout > time.Minute {
		return errors.New("bench: poll timeout must be from 1s to 60s")
	}
	switch c.Batch {
	case "":
		c.Batch = "auto"
	case "auto", "on", "off":
	default:
		return fmt.Errorf("bench: batch must be auto, on or off, got %q", c.Batch)
	}
	if c.Publishers <= 0 {
		c.Publishers = 1
	}
	c.Publishers = min(c.Publishers, c.Channels, 256)
	if c.Prefix == "" {
		c.Prefix = "bench:" + rand.Text()[:8] + "-"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// serverAddr returns the host:port of a server URL, refusing any address
// outside the loopback range: the bench is a load generator, and this one
// only ever loads a server on the same machine.
func serverAddr(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("bench: server must be an http:// URL, got %q", server)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("bench: server must be on an IPv4 loopback address (127.0.0.0/8), got %q", u.Host)
	}
	return net.JoinHostPort(host, port), nil
}
