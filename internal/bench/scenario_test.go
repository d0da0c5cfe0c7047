package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, scenario string, cfg Config) *Result {
	t.Helper()
	var log bytes.Buffer
	cfg.Log = &log
	cfg.APIKey = testAPIKey
	if cfg.Procs == 0 {
		cfg.Procs = 1
	}
	res, err := Run(context.Background(), scenario, cfg)
	if err != nil {
		t.Fatalf("%s: %v\n%s", scenario, err, log.String())
	}
	if res.ErrorCount > 0 {
		t.Errorf("%s: %d errors: %v", scenario, res.ErrorCount, res.Errors)
	}
	return res
}

func TestFanout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			base := startServer(t)
			// 200 publications (400/s for 0.5s), all measured, to 50 subscribers.
			res := run(t, ScenarioFanout, Config{Server: base, Transport: tr, Connections: 50, Rate: 400, Duration: 500 * time.Millisecond})
			if res.Connected != 50 || res.ConnectFailures != 0 {
				t.Errorf("connected %d, failed %d", res.Connected, res.ConnectFailures)
			}
			if res.Published != 200 || res.PublishErrors != 0 {
				t.Errorf("published %d with %d errors, want 200 and 0", res.Published, res.PublishErrors)
			}
			if res.Deliveries != 10_000 || res.Expected != 10_000 || res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 {
				t.Errorf("deliveries %d of %d expected, lost %d, duplicated %d, out of order %d",
					res.Deliveries, res.Expected, res.Lost, res.Duplicated, res.OutOfOrder)
			}
			if res.LatencyMS.P50 <= 0 || res.LatencyMS.Max < res.LatencyMS.P99 || res.LatencyMS.P99 < res.LatencyMS.P50 {
				t.Errorf("latency percentiles out of order: %+v", res.LatencyMS)
			}
			// The JSON line carries the same figures.
			var buf bytes.Buffer
			if err := res.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Deliveries != res.Deliveries || strings.Count(buf.String(), "\n") != 1 {
				t.Errorf("JSON line %q does not round-trip: %v", buf.String(), err)
			}
		})
	}
}

func TestFanoutWarmupIsNotMeasured(t *testing.T) {
	base := startServer(t)
	// 100 publications in the 250ms warm-up, then 100 measured.
	res := run(t, ScenarioFanout, Config{Server: base, Connections: 10, Rate: 400, Warmup: 250 * time.Millisecond, Duration: 250 * time.Millisecond})
	if res.Published != 200 || res.Deliveries != 1000 || res.WarmupDeliveries != 1000 || res.Lost != 0 {
		t.Errorf("published %d, measured deliveries %d (want 1000), warm-up %d (want 1000), lost %d",
			res.Published, res.Deliveries, res.WarmupDeliveries, res.Lost)
	}
}

func TestSpread(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			base := startServer(t)
			// 500 publications on random ones of 100 channels, one subscriber each.
			res := run(t, ScenarioSpread, Config{Server: base, Transport: tr, Connections: 100, Rate: 1000, Duration: 500 * time.Millisecond, Batch: "on"})
			if res.Connected != 100 || res.Channels != 100 {
				t.Errorf("connected %d on %d channels", res.Connected, res.Channels)
			}
			if !res.Batch || res.PublishBatches == 0 {
				t.Errorf("batch %v, %d calls to /api/batch", res.Batch, res.PublishBatches)
			}
			if res.Published != 500 || res.Deliveries != 500 || res.Expected != 500 || res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 {
				t.Errorf("published %d, deliveries %d of %d expected, lost %d, duplicated %d, out of order %d",
					res.Published, res.Deliveries, res.Expected, res.Lost, res.Duplicated, res.OutOfOrder)
			}
		})
	}
}

func TestSpreadWithoutBatch(t *testing.T) {
	base := startServer(t)
	res := run(t, ScenarioSpread, Config{Server: base, Connections: 20, Rate: 1000, Duration: 200 * time.Millisecond, Batch: "off", Publishers: 4})
	if res.Batch || res.Published != 200 || res.Deliveries != 200 || res.Lost != 0 || res.OutOfOrder != 0 {
		t.Errorf("batch %v, published %d, deliveries %d, lost %d, out of order %d", res.Batch, res.Published, res.Deliveries, res.Lost, res.OutOfOrder)
	}
	// Every publication waited for its call and the probe woke many times
	// over the run; neither can be exactly zero.
	if res.PublishWaitMS.Max <= 0 || res.WakeDelayMS.Max <= 0 || res.WakeDelayMS.P50 > res.WakeDelayMS.Max {
		t.Errorf("publish wait %+v, wake-up delay %+v", res.PublishWaitMS, res.WakeDelayMS)
	}
}

func TestIdle(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			base := startServer(t)
			res := run(t, ScenarioIdle, Config{
				Server: base, Transport: tr, Connections: 300, Sources: 3, Duration: 100 * time.Millisecond,
				PollTimeout: time.Second, ServerPID: os.Getpid(),
			})
			if res.Connected != 300 || res.ConnectFailures != 0 || res.Disconnects != 0 {
				t.Errorf("connected %d, failed %d, disconnected %d", res.Connected, res.ConnectFailures, res.Disconnects)
			}
			if res.Sources != 3 || res.ConnectRate <= 0 || res.ConnectLatencyMS.Max <= 0 {
				t.Errorf("sources %d, connect rate %v, latency %+v", res.Sources, res.ConnectRate, res.ConnectLatencyMS)
			}
			if res.ServerRSSBeforeKiB <= 0 || res.ServerRSSAfterKiB <= 0 {
				t.Errorf("server RSS not read: %d, %d", res.ServerRSSBeforeKiB, res.ServerRSSAfterKiB)
			}
		})
	}
}

func TestChurn(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			base := startServer(t)
			res := run(t, ScenarioChurn, Config{
				Server: base, Transport: tr, Connections: 50, ChurnRate: 200, Rate: 50,
				Duration: 500 * time.Millisecond, PollTimeout: time.Second,
			})
			if res.Connected != 50 || res.ConnectFailures != 0 {
				t.Errorf("connected %d, failed %d: %v", res.Connected, res.ConnectFailures, res.Errors)
			}
			// 200/s over the 0.5s of publishing (no warm-up here).
			if res.Churned < 50 || res.Duplicated != 0 || res.OutOfOrder != 0 {
				t.Errorf("churned %d, duplicated %d, out of order %d", res.Churned, res.Duplicated, res.OutOfOrder)
			}
		})
	}
}

func TestRunRefusesWhatItCannotDo(t *testing.T) {
	cases := []struct {
		scenario string
		cfg      Config
		want     string
	}{
		{"bogus", Config{Connections: 1}, "unknown scenario"},
		{ScenarioIdle, Config{Server: "http://10.0.0.1:8000", Connections: 1}, "loopback"},
		{ScenarioIdle, Config{Server: "http://example.com", Connections: 1}, "loopback"},
		{ScenarioIdle, Config{Connections: 0}, "connections"},
		{ScenarioIdle, Config{Connections: 1, Transport: "carrier-pigeon"}, "transport"},
		{ScenarioFanout, Config{Connections: 1}, "rate"},
		{ScenarioChurn, Config{Connections: 1, Rate: 1}, "churn rate"},
		{ScenarioIdle, Config{Connections: 1, Duration: 2 * time.Hour}, "capped"},
		{ScenarioIdle, Config{Connections: 50_000, Procs: 1}, "open-file limit"},
	}
	for _, c := range cases {
		_, err := Run(context.Background(), c.scenario, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: error %v, want one with %q", c.scenario, c.cfg, err, c.want)
		}
	}
}
