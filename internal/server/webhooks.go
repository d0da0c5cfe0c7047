package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/internal/hooks/webhook"
	"github.com/heraldrt/herald/internal/node"
)

// WebhooksConfig configures the webhooks: the node's events sent to HTTP
// endpoints from an outbox on disk (docs/webhooks.md).
type WebhooksConfig struct {
	// Endpoints receive the events; none turns webhooks off.
	Endpoints []WebhookEndpoint `koanf:"endpoints"`
	// Dir holds the outbox; empty means <data_dir>/webhooks, or memory
	// (lost on exit) with the memory engine.
	Dir string `koanf:"dir"`
	// BatchSize and BatchBytes bound one request.
	BatchSize  int `koanf:"batch_size"`
	BatchBytes int `koanf:"batch_bytes"`
	// FlushInterval is how long an idle endpoint waits for more events
	// before sending what it has.
	FlushInterval time.Duration `koanf:"flush_interval"`
	// Timeout bounds one request.
	Timeout time.Duration `koanf:"timeout"`
	// RetryMin and RetryMax bound the backoff between failed attempts.
	RetryMin time.Duration `koanf:"retry_min"`
	RetryMax time.Duration `koanf:"retry_max"`
	// MaxEvents and MaxBytes bound the outbox; events beyond them are
	// refused and reported by an "overflow" event.
	MaxEvents int   `koanf:"max_events"`
	MaxBytes  int64 `koanf:"max_bytes"`
}

// WebhookEndpoint is one receiver of events.
type WebhookEndpoint struct {
	URL    string `koanf:"url"`
	Secret string `koanf:"secret"`
	// Events lists the event types sent; empty: all.
	Events []string `koanf:"events"`
	// Channels lists channel glob patterns ("chat:*"); empty: all.
	Channels []string `koanf:"channels"`
}

func defaultWebhooks() WebhooksConfig {
	return WebhooksConfig{
		Endpoints:     []WebhookEndpoint{},
		BatchSize:     100,
		BatchBytes:    1 << 20,
		FlushInterval: 100 * time.Millisecond,
		Timeout:       10 * time.Second,
		RetryMin:      500 * time.Millisecond,
		RetryMax:      time.Minute,
		MaxEvents:     100_000,
		MaxBytes:      64 << 20,
	}
}

// webhookConfig is the webhook package's configuration; dataDir and engine
// place the outbox when Dir is empty.
func (c *WebhooksConfig) webhookConfig(dataDir, engine string) webhook.Config {
	dir := c.Dir
	if dir == "" && engine != EngineMemory && dataDir != "" {
		dir = filepath.Join(dataDir, "webhooks")
	}
	out := webhook.Config{
		Dir: dir, BatchSize: c.BatchSize, BatchBytes: c.BatchBytes, FlushInterval: c.FlushInterval, Timeout: c.Timeout,
		RetryMin: c.RetryMin, RetryMax: c.RetryMax, MaxEvents: c.MaxEvents, MaxBytes: c.MaxBytes,
	}
	for _, e := range c.Endpoints {
		out.Endpoints = append(out.Endpoints, webhook.Endpoint{URL: e.URL, Secret: e.Secret, Events: e.Events, Channels: e.Channels})
	}
	return out
}

func (c *WebhooksConfig) validate(bad func(key, format string, args ...any)) {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"webhooks.flush_interval", c.FlushInterval},
		{"webhooks.timeout", c.Timeout},
		{"webhooks.retry_min", c.RetryMin},
		{"webhooks.retry_max", c.RetryMax},
	} {
		if d.v <= 0 {
			bad(d.key, "must be a positive duration, got %v", d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int64
	}{
		{"webhooks.batch_size", int64(c.BatchSize)},
		{"webhooks.batch_bytes", int64(c.BatchBytes)},
		{"webhooks.max_events", int64(c.MaxEvents)},
		{"webhooks.max_bytes", c.MaxBytes},
	} {
		if n.v <= 0 {
			bad(n.key, "must be positive, got %d", n.v)
		}
	}
	wc := c.webhookConfig("", "")
	if err := wc.Validate(); err != nil {
		bad("webhooks", "%v", err)
	}
}

// newWebhooks opens the webhooks' outbox, or returns nil when no endpoint is
// configured.
func (s *Server) newWebhooks() (*webhook.Webhooks, error) {
	c := &s.cfg.Webhooks
	if len(c.Endpoints) == 0 {
		return nil, nil
	}
	wc := c.webhookConfig(s.cfg.DataDir, s.cfg.Engine)
	wc.Logger = s.log.With("component", "webhooks")
	w, err := webhook.New(wc)
	if err != nil {
		return nil, err
	}
	s.metrics.reg.MustRegister(webhookCollector{w})
	return w, nil
}

var (
	webhookDepthDesc     = prometheus.NewDesc("herald_webhook_outbox_depth", "Events in the webhook outbox not yet delivered to every endpoint.", nil, nil)
	webhookDeliveredDesc = prometheus.NewDesc("herald_webhook_delivered_total", "Events acknowledged by webhook endpoints (one event to two endpoints counts two).", nil, nil)
	webhookFailedDesc    = prometheus.NewDesc("herald_webhook_failed_attempts_total", "Webhook requests that failed (error, timeout or non-2xx) and are retried.", nil, nil)
	webhookDroppedDesc   = prometheus.NewDesc("herald_webhook_dropped_total", "Events refused because the webhook outbox or the buffer in front of it was full, or an outbox write failed; receivers get an overflow event for them.", nil, nil)
)

// webhookCollector reads the webhooks' counters once per scrape.
type webhookCollector struct{ w *webhook.Webhooks }

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{webhookDepthDesc, webhookDeliveredDesc, webhookFailedDesc, webhookDroppedDesc} {
		ch <- d
	}
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Stats()
	ch <- prometheus.MustNewConstMetric(webhookDepthDesc, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(webhookDeliveredDesc, prometheus.CounterValue, float64(st.Delivered))
	ch <- prometheus.MustNewConstMetric(webhookFailedDesc, prometheus.CounterValue, float64(st.FailedAttempts))
	ch <- prometheus.MustNewConstMetric(webhookDroppedDesc, prometheus.CounterValue, float64(st.Dropped))
}

// events is the node's event sink: the webhooks, or nil.
func (s *Server) events() node.EventSink {
	if s.hooks == nil {
		return nil
	}
	return s.hooks
}

// closeHooks sends what the webhooks can before ctx ends and closes their
// outbox; without webhooks it does nothing.
func (s *Server) closeHooks(ctx context.Context) error {
	if s.hooks == nil {
		return nil
	}
	return s.hooks.Shutdown(ctx)
}
