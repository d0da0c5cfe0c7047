// Command herald is the Herald real-time messaging server and its tools.
//
// Usage:
//
//	herald <command> [flags]
//
// Commands are listed by `herald help`; `herald <command> --help` describes
// one.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line or configuration is wrong
)

// command is one subcommand. run gets the arguments after the command name
// and returns the exit code; ctx ends on SIGINT or SIGTERM.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order help shows them.
func commands() []command {
	return []command{
		{"serve", "run the server", serve},
		{"pub", "publish to a channel through the server API", pub},
		{"sub", "subscribe and print publications as JSON lines", sub},
		{"token", "mint a connection or subscription JWT for development", token},
		{"genconfig", "print a commented default configuration file", genconfig},
		{"bench", "load-test a server: idle, fanout, spread, churn", benchCmd},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "herald: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Herald is a real-time messaging server: channels, history, presence,\n")
	fmt.Fprint(w, "over WebSocket, SSE and HTTP polling.\n\nUsage:\n\n  herald <command> [flags]\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'herald <command> --help' for a command's flags.\n")
	fmt.Fprint(w, "Try it: herald serve --dev, then open http://127.0.0.1:8000/\n")
}
