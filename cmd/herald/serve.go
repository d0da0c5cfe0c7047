package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/heraldrt/herald/internal/gctune"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/transport/websocket"
)

const serveIntro = `Usage: herald serve [flags]

Runs the server until SIGINT or SIGTERM, then shuts down gracefully: clients
are told to reconnect, spread over drain_spread, and the store is closed
cleanly. SIGHUP reloads the configuration: limits, namespaces, token keys,
the API key, allowed origins and the log level change at once; other
options are logged as needing a restart (docs/operations.md).

Options come from, in increasing precedence: built-in defaults, the config
file (--config, or HERALD_CONFIG), HERALD_* environment variables, and the
flags below. 'herald genconfig' prints every option with its default.
Exit status: 0 after a clean shutdown, 1 on failure, 2 on a usage or
configuration error.
`

// serve runs the server.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve")
	configFile := fs.StringP("config", "c", "", "config file, YAML, TOML or JSON by extension (env HERALD_CONFIG)")
	server.AddFlags(fs)
	if code, done := parseFlags(fs, serveIntro, args, stdout, stderr); done {
		return code
	}
	file := *configFile
	if file == "" {
		file = os.Getenv("HERALD_CONFIG")
	}
	cfg, err := server.Load(file, fs)
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: %v\n", err)
		return exitUsage
	}
	log := cfg.NewLogger(stderr)
	cfg.Logger = log
	cfg.Loader = func() (server.Config, error) { return server.Load(file, fs) }
	websocket.RouteLibraryLogs(log)
	srv, err := server.New(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitError
	}
	// The GC percent is process-wide, so the process tunes it, not the
	// server (tests run many servers in one process).
	if cfg.GCTuning {
		if tuner := gctune.New(gctune.Config{}); tuner != nil {
			tuneCtx, stopTuning := context.WithCancel(ctx)
			defer stopTuning()
			go tuner.Run(tuneCtx)
		}
	}
	stopReloads := reloadOnHangup(ctx, srv)
	defer stopReloads()
	if err := srv.Run(ctx); err != nil {
		log.Error("server failed", "err", err)
		return exitError
	}
	return exitOK
}

// reloader is what SIGHUP calls: *server.Server.
type reloader interface {
	Reload(ctx context.Context) error
}

// reloadOnHangup reloads srv's configuration on every SIGHUP until ctx ends
// or the returned function is called. Reload logs its own outcome; a
// refused configuration leaves the server running as it was.
func reloadOnHangup(ctx context.Context, srv reloader) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				_ = srv.Reload(ctx)
			case <-ctx.Done():
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}
