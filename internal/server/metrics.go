package server

import (
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// metrics is the server's Prometheus registry: the node's counts, read at
// each scrape, and the events it reports as its Observer. Each server has
// its own registry, so servers in one process (tests) do not collide.
type metrics struct {
	reg          *prometheus.Registry
	publish      *prometheus.HistogramVec
	disconnects  *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	// stats reads the node; set once the node exists, before serving.
	stats func() node.Stats
}

var _ node.Observer = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_engine_publish_seconds",
			Help: "Time the engine took to store and acknowledge one publication, by result.",
			// From a memory publish (microseconds) to a slow disk sync or a
			// broker far away (a second).
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"result"}),
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
		m.publish, m.disconnects, m.authFailures,
		nodeCollector{m},
	)
	return m
}

func (m *metrics) Published(took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.publish.WithLabelValues(result).Observe(took.Seconds())
}

func (m *metrics) Disconnected(transport string, d protocol.Disconnect) {
	m.disconnects.WithLabelValues(transport, strconv.FormatUint(uint64(d.Code), 10)).Inc()
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
)

// nodeCollector reads the node's counts once per scrape.
type nodeCollector struct{ m *metrics }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, channelsDesc, subscriptionsDesc, publicationsDesc, deliveriesDesc} {
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
}
