package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/internal/bench"
)

const benchIntro = `Usage: herald bench <scenario> [flags]

Load-tests a Herald server on this machine and reports what it measured:
a table for people, then one line of JSON for scripts (fields are described
in docs/benchmarks.md). Progress goes to standard error.

Scenarios:

  idle     open --connections subscribers and hold them; connect rate and,
           with --server-pid, the server's memory per connection
  fanout   --subscribers on one channel, a publisher at --rate; deliveries/s,
           latency percentiles, lost, duplicated and out-of-order counts
  spread   --subscribers on as many channels, publications to random channels
           at --rate; same report
  churn    --connections subscribers, --churn-rate of them replaced per second
           while publishing at --rate; connect failures and latency

Subscribers use --transport websocket, sse or longpoll, read by one event loop
per process. Runs needing more sockets than one process may open are spread
over worker processes (--procs). Only loopback servers are accepted, and
every run stops by itself (--duration is capped at 1h).

Run 'herald bench <scenario> --help' for a scenario's flags.
Exit status: 0 when the run completed, 1 when it failed, 2 on a usage error.
`

// generatorGCPercent is the collector's headroom in bench processes unless
// GOGC says otherwise: the generator shares the machine with the server it
// measures, and each collection it skips leaves that CPU to the server. Its
// heap is tens of MiB, so the headroom costs little memory.
const generatorGCPercent = 400

func setGeneratorGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(generatorGCPercent)
	}
}

// benchCmd runs a load-test scenario.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchIntro)
		return exitUsage
	}
	setGeneratorGC()
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, benchIntro)
		return exitOK
	case "worker":
		// Hidden: a worker process started by a run with --procs > 1.
		logging.Output = stderr
		logging.SetLevel(logging.LevelError)
		if err := bench.RunWorker(ctx, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "herald bench worker: %v\n", err)
			return exitError
		}
		return exitOK
	case bench.ScenarioIdle, bench.ScenarioFanout, bench.ScenarioSpread, bench.ScenarioChurn:
	default:
		fmt.Fprintf(stderr, "herald bench: unknown scenario %q\n\n%s", args[0], benchIntro)
		return exitUsage
	}
	scenario := args[0]
	fs := newFlagSet("bench " + scenario)
	cfg := benchFlags(fs, scenario)
	cpuProfile := fs.String("cpuprofile", "", "write this process's CPU profile to the file (the generator's own cost; workers are not profiled)")
	if code, done := parseFlags(fs, scenarioIntro(scenario), args[1:], stdout, stderr); done {
		return code
	}
	if !fs.Changed("server") {
		if v := os.Getenv("HERALD_SERVER"); v != "" {
			cfg.Server = v
		}
	}
	if !fs.Changed("api-key") {
		cfg.APIKey = os.Getenv("HERALD_API_KEY")
	}
	cfg.Log = stderr
	// nbio logs to stdout by default, which is the report's; its startup
	// lines are noise here, its errors are not.
	logging.Output = stderr
	logging.SetLevel(logging.LevelError)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "herald bench %s: %v\n", scenario, err)
			return exitError
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "herald bench %s: %v\n", scenario, err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, scenario, *cfg)
	if res != nil {
		_ = res.WriteTable(stdout)
		_ = res.WriteJSON(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald bench %s: %v\n", scenario, err)
		return exitError
	}
	return exitOK
}

func scenarioIntro(scenario string) string {
	return fmt.Sprintf("Usage: herald bench %s [flags]\n\nSee 'herald bench --help' for what each scenario measures.\n", scenario)
}

// benchFlags declares the flags of one scenario into a Config.
func benchFlags(fs *pflag.FlagSet, scenario string) *bench.Config {
	cfg := &bench.Config{}
	fs.StringVar(&cfg.Server, "server", "http://127.0.0.1:8000", "server base URL, a loopback address (env HERALD_SERVER)")
	fs.StringSliceVar(&cfg.SubscribeServers, "subscribe-servers", nil, "base URLs of the cluster nodes the subscribers spread over, one worker process per node at least (default: --server)")
	fs.StringVar(&cfg.Transport, "transport", bench.TransportWebSocket, "subscriber transport: websocket, sse or longpoll")
	switch scenario {
	case bench.ScenarioFanout, bench.ScenarioSpread:
		fs.IntVar(&cfg.Connections, "subscribers", 1000, "subscriber connections")
	default:
		fs.IntVar(&cfg.Connections, "connections", 1000, "subscriber connections")
	}
	if scenario == bench.ScenarioIdle || scenario == bench.ScenarioChurn {
		fs.IntVar(&cfg.Channels, "channels", 0, "channels the connections subscribe to, round robin (0: one per connection)")
	}
	duration := 10 * time.Second
	if scenario == bench.ScenarioIdle {
		fs.DurationVar(&cfg.Duration, "duration", duration, "how long to hold the connections before measuring (at most 1h)")
	} else {
		fs.StringVar(&cfg.APIKey, "api-key", "", "server API key for publishing (env HERALD_API_KEY)")
		rate := map[string]float64{bench.ScenarioFanout: 10, bench.ScenarioSpread: 1000, bench.ScenarioChurn: 10}[scenario]
		fs.Float64Var(&cfg.Rate, "rate", rate, "publications per second")
		if scenario == bench.ScenarioChurn {
			fs.Float64Var(&cfg.ChurnRate, "churn-rate", 100, "connections replaced per second")
		}
		fs.DurationVar(&cfg.Duration, "duration", duration, "measured publishing time (at most 1h)")
		fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "publishing time before measuring starts (at most 10m)")
		fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "longest wait for deliveries in flight after the last publication")
		fs.IntVar(&cfg.PayloadSize, "payload-size", 64, "bytes of data per publication")
		fs.StringVar(&cfg.Batch, "batch", "auto", "/api/batch: auto (carries the backlog when the publisher falls behind, if the server has it), on (every call), off")
		fs.IntVar(&cfg.Publishers, "publishers", 1, "publishing connections, each owning a share of the channels and sending its calls without waiting for earlier answers (raise it for --batch off at high rates)")
	}
	fs.IntVar(&cfg.Procs, "procs", 0, "processes holding the connections (0: one per 15,000 connections; 1: this process)")
	fs.IntVar(&cfg.Sources, "sources", 0, "loopback source addresses 127.0.0.1..N to connect from (0: one per 20,000 connections)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to report its memory (VmRSS) and CPU time")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 256, "handshakes in flight per process")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 2*time.Minute, "longest connect phase")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", 30*time.Second, "long-poll timeout (longpoll transport)")
	return cfg
}
