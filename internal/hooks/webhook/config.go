package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// Config configures the webhooks. Zero durations and sizes take the
// defaults documented on each field.
type Config struct {
	// Dir holds the durable outbox; empty keeps the outbox in memory, where
	// queued events are lost when the process exits.
	Dir       string
	Endpoints []Endpoint
	// BatchSize and BatchBytes bound one request's events (100) and their
	// encoded size (1 MiB); a single larger event still goes, alone.
	BatchSize  int
	BatchBytes int
	// FlushInterval is how long an endpoint that was idle waits for more
	// events before sending what it has (100ms).
	FlushInterval time.Duration
	// Timeout bounds one request (10s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed attempts
	// (500ms and 1m): the cap doubles from RetryMin per failure up to
	// RetryMax, and each wait is a random time below it (full jitter).
	RetryMin, RetryMax time.Duration
	// MaxEvents and MaxBytes bound the outbox (100,000 events, 64 MiB).
	// Events beyond them are refused, counted, and reported to every
	// endpoint by an "overflow" event once there is room again.
	MaxEvents int
	MaxBytes  int64
	// Buffer bounds the events waiting to be written to the outbox (4096);
	// when writes fall behind, further events are refused as overflow.
	Buffer int
	Logger *slog.Logger
}

// Endpoint is one receiver of events.
type Endpoint struct {
	// URL receives POST requests; it also names the endpoint's place in the
	// outbox, so changing it starts a new endpoint.
	URL string
	// Secret keys the HMAC-SHA256 signature of every request.
	Secret string
	// Events lists the event types sent ("connect", "publish", …); empty
	// sends all.
	Events []string
	// Channels lists glob patterns (path.Match: "chat:*") of the channels
	// whose events are sent; empty sends all. Connect and disconnect, which
	// have no channel, pass it.
	Channels []string
}

// MinSecretLen is the shortest secret accepted.
const MinSecretLen = 16

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	defInt(&c.BatchSize, 100)
	defInt(&c.BatchBytes, 1<<20)
	def(&c.FlushInterval, 100*time.Millisecond)
	def(&c.Timeout, 10*time.Second)
	def(&c.RetryMin, 500*time.Millisecond)
	def(&c.RetryMax, time.Minute)
	defInt(&c.MaxEvents, 100_000)
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 << 20
	}
	defInt(&c.Buffer, 4096)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid endpoint at once.
func (c *Config) Validate() error {
	var errs []error
	seen := make(map[string]bool)
	for i, e := range c.Endpoints {
		if _, err := e.filter(); err != nil {
			errs = append(errs, fmt.Errorf("endpoints[%d]: %w", i, err))
		}
		if seen[e.URL] {
			errs = append(errs, fmt.Errorf("endpoints[%d]: url %q listed twice", i, e.URL))
		}
		seen[e.URL] = true
	}
	if c.RetryMax > 0 && c.RetryMin > c.RetryMax {
		errs = append(errs, fmt.Errorf("retry_min %v exceeds retry_max %v", c.RetryMin, c.RetryMax))
	}
	return errors.Join(errs...)
}

// filter is an endpoint's compiled filter.
type filter struct {
	types    node.EventType
	channels []string
}

func (e *Endpoint) filter() (filter, error) {
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return filter{}, fmt.Errorf("url %q is not an http:// or https:// URL", e.URL)
	}
	if len(e.Secret) < MinSecretLen {
		return filter{}, fmt.Errorf("secret must be at least %d bytes", MinSecretLen)
	}
	f := filter{types: node.AllEvents, channels: e.Channels}
	if len(e.Events) > 0 {
		f.types = 0
		for _, name := range e.Events {
			t, ok := node.ParseEventType(name)
			if !ok {
				return filter{}, fmt.Errorf("unknown event type %q", name)
			}
			f.types |= t
		}
	}
	for _, g := range e.Channels {
		if _, err := path.Match(g, ""); err != nil {
			return filter{}, fmt.Errorf("channel pattern %q: %w", g, err)
		}
	}
	return f, nil
}

// match reports whether the filter passes an event of type t on channel.
func (f *filter) match(t node.EventType, channel string) bool {
	if f.types&t == 0 {
		return false
	}
	if len(f.channels) == 0 || channel == "" {
		return true
	}
	for _, g := range f.channels {
		if ok, _ := path.Match(g, channel); ok {
			return true
		}
	}
	return false
}
