package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/heraldrt/herald/internal/gctune"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/transport/websocket"
)

const serveIntro = `Usage: herald serve [flags]

Runs the server until SIGINT or SIGTERM, then shuts down gracefully: clients
are told to reconnect, and the store is closed cleanly.

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
	if err := srv.Run(ctx); err != nil {
		log.Error("server failed", "err", err)
		return exitError
	}
	return exitOK
}
