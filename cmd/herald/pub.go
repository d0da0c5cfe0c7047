package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/protocol"
)

const pubIntro = `Usage: herald pub [flags] CHANNEL DATA

Publishes DATA to CHANNEL through the server API (POST /api/publish, with
"Authorization: apikey KEY") and prints where the server stored it.

DATA is a JSON value. @FILE reads it from a file, and - from standard input.
Put -- before a DATA that starts with '-' (a negative number).

Examples:

  herald pub chat:lobby '{"text":"hello"}'
  herald pub --json chat:lobby @message.json
  echo '"hi"' | herald pub chat:lobby -
  herald pub --idempotency-key order-42-paid orders:42 '{"status":"paid"}'
  HERALD_SERVER=https://rt.example.com HERALD_API_KEY=... herald pub news '"up"'

Output: "published to CHANNEL at offset N (epoch E)", or with --json one
line of JSON, {"channel","offset","epoch"}. An ephemeral publication is not
stored: its offset is 0 and its epoch empty.

Exit status: 0 published; 1 the server refused it or could not be reached;
2 usage error (flags, arguments, DATA that is not JSON, a bad channel name);
3 unauthorized (wrong or missing API key) or permission denied.
`

// exitDenied is the exit status of a command the server refused for lack
// of credentials or permission, so scripts can tell it from other failures.
const exitDenied = 3

// defaultServer is where commands that talk to a server go by default.
const defaultServer = "http://127.0.0.1:8000"

// stdin is what DATA "-" reads; tests replace it.
var stdin io.Reader = os.Stdin

// pub publishes one publication through the server API.
func pub(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("pub")
	srv := serverFlag(fs)
	apiKey := fs.String("api-key", "", "server API key (env HERALD_API_KEY)")
	idemKey := fs.String("idempotency-key", "", "store the publication once per key: a retry with the same key returns the first result")
	ephemeral := fs.Bool("ephemeral", false, "deliver to current subscribers only, without storing")
	asJSON := fs.Bool("json", false, "print the result as one line of JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	pos, code, done := parseArgs(fs, pubIntro, args, stdout, stderr, 2, 2)
	if done {
		return code
	}
	channel := pos[0]
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "herald pub: "+format+"\n", a...)
		return code
	}
	if !protocol.ValidChannel(channel) {
		return fail(exitUsage, "invalid channel name %q", channel)
	}
	data, err := readData(pos[1])
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	key := *apiKey
	if !fs.Changed("api-key") {
		key = os.Getenv("HERALD_API_KEY")
	}
	body, err := protocol.Marshal(protocol.PublishRequest{Channel: channel, Data: data, Ephemeral: *ephemeral, IdempotencyKey: *idemKey})
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	base := serverURL(fs, *srv)
	res, err := apiPublish(ctx, base, key, body)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) && denied(e.Code) {
			return fail(exitDenied, "%v", err)
		}
		return fail(exitError, "%v", err)
	}
	if *asJSON {
		line, _ := protocol.Marshal(struct {
			Channel string `json:"channel"`
			Offset  uint64 `json:"offset"`
			Epoch   string `json:"epoch"`
		}{channel, res.Offset, res.Epoch})
		fmt.Fprintf(stdout, "%s\n", line)
		return exitOK
	}
	if res.Offset == 0 {
		fmt.Fprintf(stdout, "published to %s (ephemeral, not stored)\n", channel)
		return exitOK
	}
	fmt.Fprintf(stdout, "published to %s at offset %d (epoch %s)\n", channel, res.Offset, res.Epoch)
	return exitOK
}

// readData reads DATA from the argument, a file (@FILE) or standard input
// (-), and checks that it is one JSON value.
func readData(arg string) (json.RawMessage, error) {
	var data []byte
	var err error
	switch {
	case arg == "-":
		data, err = io.ReadAll(stdin)
	case strings.HasPrefix(arg, "@"):
		data, err = os.ReadFile(arg[1:])
	default:
		data = []byte(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("read DATA: %w", err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, fmt.Errorf("DATA is not JSON: %v", err)
	}
	return b.Bytes(), nil
}

// apiPublish posts a publish request to the server API.
func apiPublish(ctx context.Context, base, key string, body []byte) (client.PublishResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return client.PublishResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "apikey "+key)
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return client.PublishResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return client.PublishResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error *client.Error `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != nil {
			return client.PublishResult{}, e.Error
		}
		return client.PublishResult{}, fmt.Errorf("HTTP %d from %s: %.200s", resp.StatusCode, base, bytes.TrimSpace(raw))
	}
	var res struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return client.PublishResult{}, fmt.Errorf("answer from %s: %v", base, err)
	}
	return client.PublishResult{Offset: res.Offset, Epoch: res.Epoch}, nil
}

// denied reports whether a server error code means the caller lacks
// credentials or permission (exit status 3).
func denied(code uint32) bool {
	return code == client.CodeUnauthorized || code == client.CodeTokenExpired || code == client.CodePermissionDenied
}

// serverFlag adds --server, shared by the commands that talk to a server.
func serverFlag(fs *pflag.FlagSet) *string {
	return fs.String("server", defaultServer, "server base URL (env HERALD_SERVER)")
}

// serverURL is --server if given, else HERALD_SERVER, else the default,
// without a trailing slash.
func serverURL(fs *pflag.FlagSet, flag string) string {
	if !fs.Changed("server") {
		if v := os.Getenv("HERALD_SERVER"); v != "" {
			flag = v
		}
	}
	return strings.TrimSuffix(flag, "/")
}

// parseArgs parses flags and between min and max positional arguments
// (max < 0: no limit). Like parseFlags, it prints help to stdout and
// errors to stderr, and reports done with the exit code when the command
// should stop.
func parseArgs(fs *pflag.FlagSet, intro string, args []string, stdout, stderr io.Writer, min, max int) (pos []string, code int, done bool) {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "%s\nFlags:\n%s", intro, fs.FlagUsages())
		return nil, exitOK, true
	}
	if err == nil {
		switch n := fs.NArg(); {
		case n < min:
			err = fmt.Errorf("%d arguments, want at least %d", n, min)
		case max >= 0 && n > max:
			err = fmt.Errorf("unexpected argument %q", fs.Arg(max))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", fs.Name(), err, fs.Name())
		return nil, exitUsage, true
	}
	return fs.Args(), exitOK, false
}
