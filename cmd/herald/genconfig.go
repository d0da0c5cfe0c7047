package main

import (
	"context"
	"fmt"
	"io"

	"github.com/heraldrt/herald/internal/server"
)

const genconfigIntro = `Usage: herald genconfig [--format yaml|toml|json] > herald.yaml

Prints a configuration file holding every option at its default, with a
comment per option (except in JSON) naming its environment variable and
flag. 'herald serve --config FILE' reads it back.
`

// genconfig prints the default configuration.
func genconfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("genconfig")
	format := fs.StringP("format", "f", server.FormatYAML, "file format: yaml, toml or json")
	if code, done := parseFlags(fs, genconfigIntro, args, stdout, stderr); done {
		return code
	}
	switch *format {
	case server.FormatYAML, server.FormatTOML, server.FormatJSON:
	default:
		fmt.Fprintf(stderr, "herald genconfig: unknown format %q: want yaml, toml or json\n", *format)
		return exitUsage
	}
	if err := server.WriteConfig(stdout, server.Defaults(), *format); err != nil {
		fmt.Fprintf(stderr, "herald genconfig: %v\n", err)
		return exitError
	}
	return exitOK
}
