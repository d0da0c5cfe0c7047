package client_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
)

// BenchmarkPublishToReceive measures the latency from a publish command
// leaving a WebSocket publisher to the publication reaching a subscriber
// over each bidirectional transport, one publication in flight at a time:
// the path a live update takes on an idle server. Each payload carries
// its send time; the receiver compares it with its own clock (one process,
// one clock).
func BenchmarkPublishToReceive(b *testing.B) {
	// The publisher sends faster than a client may by default.
	srv := startServer(b, func(c *server.Config) { c.CommandRate, c.CommandBurst = 1e6, 1e6 })
	for _, tr := range []client.Transport{client.WebSocket, client.WebRTC} {
		for _, latest := range []bool{false, true} {
			if latest && tr != client.WebRTC {
				continue
			}
			name := tr.String()
			if latest {
				name += "-latest"
			}
			b.Run(name, func(b *testing.B) { benchLatency(b, srv.URL(), tr, latest) })
		}
	}
}

func benchLatency(b *testing.B, url string, tr client.Transport, latest bool) {
	ctx := ctxT(b)
	channel := "bench:" + tr.String()
	sub := newClient(b, url, tr, nil)
	if err := sub.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	got := make(chan time.Duration, 1)
	s, err := sub.NewSubscription(channel, client.SubscriptionConfig{
		Latest: latest,
		OnPublication: func(p client.Publication) {
			var payload struct {
				Sent int64 `json:"sent"`
			}
			if json.Unmarshal(p.Data, &payload) == nil {
				got <- time.Since(time.Unix(0, payload.Sent))
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Subscribe(ctx); err != nil {
		b.Fatal(err)
	}
	pub := newClient(b, url, client.WebSocket, nil)
	if err := pub.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		data, _ := json.Marshal(map[string]int64{"sent": time.Now().UnixNano()})
		if _, err := pub.Publish(ctx, channel, data); err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-got:
			lat = append(lat, d)
		case <-ctx.Done():
			b.Fatal("publication not received")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
