package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Result is one run's report; its JSON form is the machine-readable line
// `herald bench` prints. Latencies are in milliseconds, memory in KiB.
// Fields that do not apply to a scenario are zero.
type Result struct {
	Scenario  string `json:"scenario"`
	Transport string `json:"transport"`
	Server    string `json:"server"`
	// SubscribeServers are the nodes the subscribers spread over, in a
	// cluster run.
	SubscribeServers []string `json:"subscribe_servers,omitempty"`
	Connections      int      `json:"connections"` // requested subscriber connections
	Channels         int      `json:"channels"`
	Procs            int      `json:"procs"`   // processes holding the connections
	Sources          int      `json:"sources"` // loopback source addresses
	Rate             float64  `json:"rate"`    // requested publications per second
	ChurnRate        float64  `json:"churn_rate"`
	DurationS        float64  `json:"duration_s"`
	WarmupS          float64  `json:"warmup_s"`
	PayloadSize      int      `json:"payload_size"`
	Batch            bool     `json:"batch"` // /api/batch carried the publisher's backlog

	Connected        int64       `json:"connected"` // subscriptions confirmed in the connect phase
	ConnectFailures  int64       `json:"connect_failures"`
	ConnectSeconds   float64     `json:"connect_seconds"` // until every connection subscribed or failed
	ConnectRate      float64     `json:"connect_rate"`    // connected per second in the connect phase
	ConnectLatencyMS Percentiles `json:"connect_latency_ms"`
	Disconnects      int64       `json:"disconnects"` // subscribed connections the server or network closed
	Churned          int64       `json:"churned"`     // connections replaced (churn)

	Published        uint64      `json:"published"`       // publications made by the publisher
	PublishErrors    uint64      `json:"publish_errors"`  // not acknowledged by the server API
	PublishDropped   uint64      `json:"publish_dropped"` // not sent: the publisher's backlog was full
	PublishBatches   uint64      `json:"publish_batches"` // calls to /api/batch
	PublishLatencyMS Percentiles `json:"publish_latency_ms"`
	// PublishWaitMS is from a publication's due time to the start of the
	// call that carried it.
	PublishWaitMS Percentiles `json:"publish_wait_ms"`
	// WakeDelayMS is how late a goroutine of the generator's main process
	// woke from 1 ms sleeps while publishing (probeWakeUps).
	WakeDelayMS Percentiles `json:"wake_delay_ms"`

	Deliveries       uint64      `json:"deliveries"`         // measured publications received, each counted once per subscriber
	DeliveriesPerSec float64     `json:"deliveries_per_sec"` // deliveries / duration
	Expected         uint64      `json:"expected"`           // acknowledged measured publications × their channel's subscribers
	Lost             uint64      `json:"lost"`               // expected but never received
	Duplicated       uint64      `json:"duplicated"`
	OutOfOrder       uint64      `json:"out_of_order"`
	WarmupDeliveries uint64      `json:"warmup_deliveries"`
	LatencyMS        Percentiles `json:"latency_ms"` // publish due time → received, measured publications

	ServerRSSBeforeKiB    int64   `json:"server_rss_before_kib"`
	ServerRSSConnectedKiB int64   `json:"server_rss_connected_kib"`
	ServerRSSAfterKiB     int64   `json:"server_rss_after_kib"`
	ServerRSSPerConnKiB   float64 `json:"server_rss_per_conn_kib"` // (after − before) / connected
	ServerCPUPercent      float64 `json:"server_cpu_percent"`      // during the hold or publishing, 100 = one core

	GeneratorRSSKiB     int64   `json:"generator_rss_kib"`
	GeneratorCPUSeconds float64 `json:"generator_cpu_seconds"`

	Errors     []string `json:"errors,omitempty"`
	ErrorCount int      `json:"error_count"`
}

func newResult(scenario string, cfg *Config) *Result {
	return &Result{
		Scenario:         scenario,
		Transport:        cfg.Transport,
		Server:           cfg.Server,
		SubscribeServers: cfg.SubscribeServers,
		Connections:      cfg.Connections,
		Channels:         cfg.Channels,
		Procs:            cfg.Procs,
		Sources:          cfg.Sources,
		Rate:             cfg.Rate,
		ChurnRate:        cfg.ChurnRate,
		DurationS:        cfg.Duration.Seconds(),
		WarmupS:          cfg.Warmup.Seconds(),
		PayloadSize:      cfg.PayloadSize,
	}
}

// addFleet fills the subscriber side from the final totals and the connect
// phase's.
func (r *Result) addFleet(final, ready FleetResult, cfg *Config) {
	r.Connected = ready.Connected
	r.ConnectFailures = final.ConnectFailures
	r.ConnectSeconds = round3(ready.ConnectSeconds)
	if ready.ConnectSeconds > 0 {
		r.ConnectRate = round1(float64(ready.Connected) / ready.ConnectSeconds)
	}
	var h Histogram
	h.MergeData(final.ConnectLatency)
	r.ConnectLatencyMS = h.Percentiles()
	r.Disconnects = final.Disconnects
	r.Churned = final.Churned
	r.Deliveries = final.Measured
	r.DeliveriesPerSec = round1(float64(final.Measured) / cfg.Duration.Seconds())
	r.Expected = final.Expected
	r.Lost = final.Lost
	r.Duplicated = final.Duplicated
	r.OutOfOrder = final.OutOfOrder
	r.WarmupDeliveries = final.Warmup
	var l Histogram
	l.MergeData(final.Latency)
	r.LatencyMS = l.Percentiles()
	r.GeneratorRSSKiB = final.RSSKiB
	r.GeneratorCPUSeconds = round3(final.CPUSeconds)
	r.Errors = append(r.Errors, final.Errors...)
	r.ErrorCount += final.ErrorCount
	if r.Connected > 0 && r.ServerRSSBeforeKiB > 0 {
		after := r.ServerRSSAfterKiB
		if after == 0 {
			after = r.ServerRSSConnectedKiB
		}
		r.ServerRSSPerConnKiB = round3(float64(after-r.ServerRSSBeforeKiB) / float64(r.Connected))
	}
}

func (r *Result) addPublisher(p *publisher) {
	r.Published = p.made.Load()
	r.PublishErrors = p.failed.Load()
	r.PublishDropped = p.dropped.Load()
	r.PublishBatches = p.batches.Load()
	r.PublishLatencyMS = p.apiLatency.Percentiles()
	r.PublishWaitMS = p.sendWait.Percentiles()
	p.errMu.Lock()
	r.Errors = append(r.Errors, p.errs...)
	r.ErrorCount += len(p.errs)
	p.errMu.Unlock()
}

// WriteJSON writes r as one line of JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable writes r for people: the rows that apply to its scenario.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	pct := func(p Percentiles) string {
		return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", fmtMS(p.P50), fmtMS(p.P90), fmtMS(p.P99), fmtMS(p.P999), fmtMS(p.Max))
	}
	row("scenario", "%s over %s, %s", r.Scenario, r.Transport, r.Server)
	if len(r.SubscribeServers) > 0 {
		row("subscribers on", "%s", strings.Join(r.SubscribeServers, ", "))
	}
	row("connections", "%d on %d channel(s), %d process(es), %d source address(es)", r.Connections, r.Channels, r.Procs, r.Sources)
	row("connected", "%d (%d failed) in %.2fs: %.0f/s", r.Connected, r.ConnectFailures, r.ConnectSeconds, r.ConnectRate)
	row("connect latency", "%s", pct(r.ConnectLatencyMS))
	row("disconnects", "%d", r.Disconnects)
	if r.Scenario == ScenarioChurn {
		row("churned", "%d (at %.0f/s)", r.Churned, r.ChurnRate)
	}
	if r.Scenario != ScenarioIdle {
		endpoint := "/api/publish"
		if r.PublishBatches > 0 {
			endpoint = fmt.Sprintf("/api/publish and %d /api/batch calls", r.PublishBatches)
		}
		row("published", "%d at %.0f/s for %.0fs (+%.0fs warm-up), %d-byte payloads, via %s", r.Published, r.Rate, r.DurationS, r.WarmupS, r.PayloadSize, endpoint)
		row("publish errors", "%d (%d dropped by the publisher)", r.PublishErrors, r.PublishDropped)
		row("publish wait", "%s", pct(r.PublishWaitMS))
		row("publish call", "%s", pct(r.PublishLatencyMS))
		row("deliveries", "%d measured, %.0f/s", r.Deliveries, r.DeliveriesPerSec)
		if r.Scenario != ScenarioChurn {
			row("lost", "%d of %d expected", r.Lost, r.Expected)
		}
		row("duplicated", "%d", r.Duplicated)
		row("out of order", "%d", r.OutOfOrder)
		row("latency", "%s", pct(r.LatencyMS))
		row("wake-up delay", "%s", pct(r.WakeDelayMS))
	}
	if r.ServerRSSBeforeKiB > 0 {
		row("server RSS", "%s before, %s connected, %s after: %.2f KiB per connection",
			fmtKiB(r.ServerRSSBeforeKiB), fmtKiB(r.ServerRSSConnectedKiB), fmtKiB(r.ServerRSSAfterKiB), r.ServerRSSPerConnKiB)
		row("server CPU", "%.0f%% of one core", r.ServerCPUPercent)
	}
	row("generator", "%s RSS, %.1fs CPU", fmtKiB(r.GeneratorRSSKiB), r.GeneratorCPUSeconds)
	if r.ErrorCount > 0 {
		row("errors", "%d: %s", r.ErrorCount, strings.Join(r.Errors, "; "))
	}
	return tw.Flush()
}

func fmtMS(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0fµs", v*1000)
	}
	if v < 1000 {
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}

func fmtKiB(v int64) string {
	if v >= 10<<10 {
		return fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
