package server

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldrt/herald/internal/hooks/proxy"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// metrics is the server's Prometheus registry: the node's counts, read at
// each scrape, and the events it reports as its Observer. Each server has
// its own registry, so servers in one process (tests) do not collide.
// docs/metrics.md lists every metric.
type metrics struct {
	reg           *prometheus.Registry
	engine        *prometheus.HistogramVec
	fanout        prometheus.Histogram
	delivery      *prometheus.HistogramVec
	framesOut     *prometheus.CounterVec
	framesIn      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	slowConsumers *prometheus.CounterVec
	disconnects   *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	// transports holds each transport's series of framesOut, framesIn and
	// delivery (*transportMetrics by name): Received and Flushed run per
	// frame and per write, and a vec's lookup hashes the labels and takes
	// a lock shared by every connection.
	transports sync.Map
	// engineOps holds each engine operation's series, for the ok and the
	// error result ([2]prometheus.Observer by op), for the same reason:
	// EngineCall runs per engine call.
	engineOps sync.Map
	// stats and history read the node; set once the node exists, before
	// serving.
	stats   func() node.Stats
	history func(ctx context.Context, max int) []node.HistorySample
}

var _ node.Observer = (*metrics)(nil)

// History sampling at each scrape: at most historySample channels, each
// one engine read of one publication, within historyTimeout in all.
const (
	historySample  = 32
	historyTimeout = 2 * time.Second
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		engine: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_engine_seconds",
			Help: "Time the engine took for one call, by operation (publish, history, subscribe, presence_add, ...) and result (ok, error).",
			// From a memory call (microseconds) to a slow disk sync or a
			// broker far away (a second).
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"op", "result"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_fanout_seconds",
			Help: "Time the hub took to hand one publication to all of its channel's local subscribers.",
			// One subscriber takes about a microsecond; 100,000 take tens
			// of milliseconds.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 11),
		}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_delivery_latency_seconds",
			Help: "Time from the engine accepting a live publication to its frame being written to a client's connection, for the oldest publication of each write, by transport. Millisecond resolution; across nodes it includes their clock skew.",
			// The publication time has millisecond resolution.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"transport"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_frames_sent_total",
			Help: "Frames (replies, publications, other pushes, pings) written to clients, by transport.",
		}, []string{"transport"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_frames_received_total",
			Help: "Frames (each holding one or more commands) received from clients, by transport.",
		}, []string{"transport"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dropped_frames_total",
			Help: "Queued frames discarded undelivered, by transport and reason (slow_consumer: the queue of a client disconnected as a slow consumer; superseded: a latest-only publication replaced by a newer one).",
		}, []string{"transport", "reason"}),
		slowConsumers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_slow_consumer_disconnects_total",
			Help: "Connections closed as slow consumers (close code 4001), by transport.",
		}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_disconnects_total",
			Help: "Connections the server closed, by transport and close code (4001: slow consumer).",
		}, []string{"transport", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_auth_failures_total",
			Help: "Refused tokens and permissions, by protocol error code (101 unauthorized, 102 token expired, 103 permission denied).",
		}, []string{"code"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.engine, m.fanout, m.delivery, m.framesOut, m.framesIn, m.dropped,
		m.slowConsumers, m.disconnects, m.authFailures,
		nodeCollector{m},
	)
	return m
}

func (m *metrics) EngineCall(op string, took time.Duration, err error) {
	o, ok := m.engineOps.Load(op)
	if !ok {
		o, _ = m.engineOps.LoadOrStore(op, &[2]prometheus.Observer{
			m.engine.WithLabelValues(op, "ok"),
			m.engine.WithLabelValues(op, "error"),
		})
	}
	result := 0
	if err != nil {
		result = 1
	}
	o.(*[2]prometheus.Observer)[result].Observe(took.Seconds())
}

func (m *metrics) FannedOut(took time.Duration) { m.fanout.Observe(took.Seconds()) }

// transportMetrics are one transport's series.
type transportMetrics struct {
	framesOut, framesIn prometheus.Counter
	delivery            prometheus.Observer
}

func (m *metrics) transport(name string) *transportMetrics {
	if t, ok := m.transports.Load(name); ok {
		return t.(*transportMetrics)
	}
	t, _ := m.transports.LoadOrStore(name, &transportMetrics{
		framesOut: m.framesOut.WithLabelValues(name),
		framesIn:  m.framesIn.WithLabelValues(name),
		delivery:  m.delivery.WithLabelValues(name),
	})
	return t.(*transportMetrics)
}

func (m *metrics) Flushed(transport string, frames int, latency time.Duration) {
	t := m.transport(transport)
	t.framesOut.Add(float64(frames))
	if latency >= 0 {
		t.delivery.Observe(latency.Seconds())
	}
}

func (m *metrics) Received(transport string) { m.transport(transport).framesIn.Inc() }

func (m *metrics) Dropped(transport, reason string, frames int) {
	m.dropped.WithLabelValues(transport, reason).Add(float64(frames))
}

func (m *metrics) Disconnected(transport string, d protocol.Disconnect) {
	m.disconnects.WithLabelValues(transport, strconv.FormatUint(uint64(d.Code), 10)).Inc()
	if d.Code == protocol.DisconnectSlowConsumer.Code {
		m.slowConsumers.WithLabelValues(transport).Inc()
	}
}

func (m *metrics) AuthFailed(code uint32) {
	m.authFailures.WithLabelValues(strconv.FormatUint(uint64(code), 10)).Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	connectionsDesc   = prometheus.NewDesc("herald_connections", "Open client connections on this node, by transport.", []string{"transport"}, nil)
	channelsDesc      = prometheus.NewDesc("herald_channels", "Channels with subscribers on this node.", nil, nil)
	subscriptionsDesc = prometheus.NewDesc("herald_subscriptions", "Subscriptions of this node's clients.", nil, nil)
	publicationsDesc  = prometheus.NewDesc("herald_publications_total", "Publications accepted through this node (server API and clients).", nil, nil)
	deliveriesDesc    = prometheus.NewDesc("herald_deliveries_total", "Copies of publications handed to this node's subscribers (one publication to N subscribers counts N).", nil, nil)
	historyDesc       = prometheus.NewDesc("herald_history_publications", "Publications kept in the history of a bounded sample of the channels with subscribers on this node, read at each scrape, by namespace.", []string{"namespace"}, nil)
)

// historyBuckets span a few publications to the largest histories.
var historyBuckets = prometheus.ExponentialBuckets(1, 4, 10)

// nodeCollector reads the node's counts once per scrape.
type nodeCollector struct{ m *metrics }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, channelsDesc, subscriptionsDesc, publicationsDesc, deliveriesDesc, historyDesc} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.m.stats == nil {
		return
	}
	st := c.m.stats()
	// The usual transports are always listed, so a dashboard sees a zero
	// rather than no series.
	connections := map[string]int{"websocket": 0, "sse": 0, "webrtc": 0}
	maps.Copy(connections, st.Connections)
	for transport, n := range connections {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(n), transport)
	}
	ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(st.Channels))
	ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(st.Subscriptions))
	ch <- prometheus.MustNewConstMetric(publicationsDesc, prometheus.CounterValue, float64(st.Publications))
	ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.CounterValue, float64(st.Deliveries))
	if c.m.history != nil {
		c.collectHistory(ch)
	}
}

// collectHistory reports the sampled history lengths as one histogram per
// namespace.
func (c nodeCollector) collectHistory(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	byNamespace := make(map[string]*hist)
	for _, s := range c.m.history(ctx, historySample) {
		h := byNamespace[s.Namespace]
		if h == nil {
			h = &hist{buckets: make(map[float64]uint64, len(historyBuckets))}
			for _, b := range historyBuckets {
				h.buckets[b] = 0
			}
			byNamespace[s.Namespace] = h
		}
		h.count++
		h.sum += float64(s.Publications)
		for _, b := range historyBuckets {
			if float64(s.Publications) <= b {
				h.buckets[b]++
			}
		}
	}
	for ns, h := range byNamespace {
		ch <- prometheus.MustNewConstHistogram(historyDesc, h.count, h.sum, h.buckets, ns)
	}
}

// proxyMetrics counts the backend proxy's calls (docs/proxy.md), as its
// Observer. They are registered only on servers with a proxy.
type proxyMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ proxy.Observer = (*proxyMetrics)(nil)

// proxyObserver registers the proxy's metrics in m's registry; it is called
// once, when the server makes its proxy.
func (m *metrics) proxyObserver() *proxyMetrics {
	pm := &proxyMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_proxy_requests_total",
			Help: "Calls to the application's backend through the proxy, by kind (connect, refresh, subscribe, publish, rpc) and result (ok; error: the backend refused; unavailable: it did not answer in time or with a reply).",
		}, []string{"kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_proxy_duration_seconds",
			Help: "Time one call to the application's backend took, whatever its result, by kind.",
			// From a loopback backend (a fraction of a millisecond) to the
			// default proxy.timeout of 5s.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
	}
	m.reg.MustRegister(pm.requests, pm.duration)
	return pm
}

func (pm *proxyMetrics) ProxyCall(kind, result string, took time.Duration) {
	pm.requests.WithLabelValues(kind, result).Inc()
	pm.duration.WithLabelValues(kind).Observe(took.Seconds())
}
