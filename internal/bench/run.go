package bench

import (
	"context"
	"fmt"
	"time"
)

// Run runs one scenario (idle, fanout, spread or churn) with cfg and
// returns what it measured. It opens the subscribers, in this process or in
// cfg.Procs worker processes, then publishes (or, for idle, holds) for
// cfg.Warmup + cfg.Duration, drains, and closes everything it opened before
// it returns. The whole run is bounded in time whatever the server does.
func Run(ctx context.Context, scenario string, cfg Config) (*Result, error) {
	switch scenario {
	case ScenarioIdle, ScenarioFanout, ScenarioSpread, ScenarioChurn:
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q", scenario)
	}
	if err := cfg.setDefaults(scenario); err != nil {
		return nil, err
	}
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, err
	}
	perProc := (cfg.Connections + cfg.Procs - 1) / cfg.Procs
	if uint64(perProc)+256 > limit {
		return nil, fmt.Errorf("bench: %d connections per process exceed the open-file limit of %d; use more --procs", perProc, limit)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+cfg.Warmup+cfg.Duration+cfg.Drain+3*time.Minute)
	defer cancel()

	res := newResult(scenario, &cfg)
	srv := serverProbe{pid: cfg.ServerPID}
	res.ServerRSSBeforeKiB = srv.rss()

	specs := splitSpecs(&cfg)
	var subs subscribers
	if len(specs) == 1 {
		subs, err = newLocalSubscribers(specs[0])
	} else {
		subs, err = newRemoteSubscribers(&cfg, specs)
	}
	if err != nil {
		return nil, err
	}
	defer subs.close()
	fmt.Fprintf(cfg.Log, "bench %s: opening %d %s connections on %d channels (%d process(es), %d source address(es))\n",
		scenario, cfg.Connections, cfg.Transport, cfg.Channels, cfg.Procs, cfg.Sources)
	ready, err := subs.open(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "bench %s: %d connected, %d failed in %.1fs\n", scenario, ready.Connected, ready.ConnectFailures, ready.ConnectSeconds)
	res.ServerRSSConnectedKiB = srv.rss()

	var final FleetResult
	if scenario == ScenarioIdle {
		cpu0 := srv.cpu()
		hold := time.NewTimer(cfg.Duration)
		select {
		case <-hold.C:
		case <-ctx.Done():
		}
		hold.Stop()
		res.ServerCPUPercent = srv.cpuPercent(cpu0, cfg.Duration)
		res.ServerRSSAfterKiB = srv.rss()
		if final, err = subs.finish(ctx, nil, 0); err != nil {
			return nil, err
		}
	} else {
		pick := pickOne
		if cfg.Channels > 1 {
			pick = pickRandom(cfg.Channels)
		}
		pub := newPublisher(&cfg, pick)
		if err := pub.chooseEndpoint(ctx); err != nil {
			return nil, err
		}
		res.Batch = pub.batch
		if err := subs.start(ctx); err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "bench %s: publishing %.0f/s for %v + %v warm-up\n", scenario, cfg.Rate, cfg.Duration, cfg.Warmup)
		cpu0 := srv.cpu()
		start := time.Now()
		var wake Histogram
		probeCtx, stopProbe := context.WithCancel(ctx)
		probed := make(chan struct{})
		go func() { defer close(probed); probeWakeUps(probeCtx, &wake) }()
		pub.run(ctx)
		stopProbe()
		<-probed
		res.WakeDelayMS = wake.Percentiles()
		res.ServerCPUPercent = srv.cpuPercent(cpu0, time.Since(start))
		res.ServerRSSAfterKiB = srv.rss()
		if final, err = subs.finish(ctx, pub.measuredAcked(), cfg.Drain); err != nil {
			return nil, err
		}
		res.addPublisher(pub)
	}
	res.addFleet(final, ready, &cfg)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: run cut short: %w", err)
	}
	return res, nil
}

// splitSpecs divides the connections among cfg.Procs fleets.
func splitSpecs(cfg *Config) []FleetSpec {
	specs := make([]FleetSpec, 0, cfg.Procs)
	first := 0
	for i := range cfg.Procs {
		n := cfg.Connections / cfg.Procs
		if i < cfg.Connections%cfg.Procs {
			n++
		}
		server := cfg.Server
		if len(cfg.SubscribeServers) > 0 {
			server = cfg.SubscribeServers[i%len(cfg.SubscribeServers)]
		}
		spec := FleetSpec{
			Server:             server,
			Transport:          cfg.Transport,
			Prefix:             cfg.Prefix,
			Channels:           cfg.Channels,
			First:              first,
			Count:              n,
			Sources:            cfg.Sources,
			ConnectConcurrency: cfg.ConnectConcurrency,
			ConnectTimeout:     cfg.ConnectTimeout,
			PollTimeout:        cfg.PollTimeout,
			ChurnRate:          cfg.ChurnRate * float64(n) / float64(cfg.Connections),
		}
		specs = append(specs, spec)
		first += n
	}
	return specs
}

// serverProbe reads the server's memory and CPU time when its pid is known.
type serverProbe struct{ pid int }

func (p serverProbe) rss() int64 {
	if p.pid <= 0 {
		return 0
	}
	v, _ := readRSS(p.pid)
	return v
}

func (p serverProbe) cpu() float64 {
	if p.pid <= 0 {
		return 0
	}
	v, _ := readCPU(p.pid)
	return v
}

func (p serverProbe) cpuPercent(start float64, d time.Duration) float64 {
	if p.pid <= 0 || d <= 0 {
		return 0
	}
	return round1((p.cpu() - start) / d.Seconds() * 100)
}
