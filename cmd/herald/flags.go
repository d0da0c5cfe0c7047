package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// newFlagSet returns the flag set of subcommand name. It prints nothing
// itself: parseFlags does, so that help goes to stdout and errors to stderr.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("herald "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	return fs
}

// parseFlags parses a subcommand's args. When the command should stop
// (--help, a bad flag, a stray argument) it prints why and returns the exit
// code with done set; help is intro followed by the flags.
func parseFlags(fs *pflag.FlagSet, intro string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "%s\nFlags:\n%s", intro, fs.FlagUsages())
		return exitOK, true
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	return exitOK, false
}
