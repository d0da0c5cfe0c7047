package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/protocol"
)

const subIntro = `Usage: herald sub [flags] CHANNEL...

Subscribes to the channels with Herald's Go client and prints each
publication to standard output as one line of JSON:

  {"channel":"chat:lobby","offset":18,"epoch":"Ka9x2","data":{"text":"hi"},"time":"2026-05-04T10:20:30.123Z"}

plus "info" (the publishing client) and "tags" when the publication has
them; an ephemeral publication has offset 0 and no epoch. Notices go to
standard error: connection changes, and after every reconnect whether each
channel "recovered" everything it missed or was "NOT recovered" (history
lost or expired: publications are missing, reload your state).

It reconnects by itself, and runs until interrupted (SIGINT, SIGTERM) or
until --count publications were printed. On exit it prints the position to
resume from with --since.

--since POSITION resumes from a saved position instead of starting from
now. For one channel it is "<epoch>-<offset>" (the last publication seen);
for several, one "<epoch>-<offset>" per channel, the channels in sorted
order, joined by "." (the position strings of docs/protocol.md, as SSE ids
and poll positions write them). The exit notice prints exactly that.

--token TOKEN authenticates with a connection token (a JWT; 'herald
token' mints one for development); without the flag the environment
variable HERALD_TOKEN is used, and without either the client connects
anonymously, which only servers allowing anonymous clients accept. Prefer
the variable: other users can see flags in the process list. The token is
not refreshed: when it expires the server ends the connection, and the
command exits with status 3. Over WebSocket, publications of the channels
the token's "channels" claim names, which the server subscribes by itself,
are printed too (the exit notice's position does not cover them).

Examples:

  herald sub chat:lobby
  HERALD_TOKEN=$(herald token --user alice) herald sub chat:lobby
  herald sub --transport sse chat:lobby news
  herald sub --count 1 orders:42 | jq .data
  herald sub --since Ka9x2-17 chat:lobby

Join and leave events are not printed. Polling transports need history in
the channels' namespaces.

Exit status: 0 interrupted, or --count reached; 1 the server ended the
connection for good, or failed; 2 usage error; 3 unauthorized (no token,
a bad one, or one that expired), or a subscription was refused for lack
of permission.
`

// sub prints the publications of channels as JSON lines.
func sub(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sub")
	srv := serverFlag(fs)
	transport := fs.String("transport", "websocket", "websocket, sse, longpoll, shortpoll or webrtc")
	since := fs.String("since", "", "resume from this position (see above) instead of from now")
	count := fs.Int("count", 0, "exit 0 after printing this many publications (0: run until interrupted)")
	token := fs.String("token", "", "connection token, a JWT (env HERALD_TOKEN)")
	channels, code, done := parseArgs(fs, subIntro, args, stdout, stderr, 1, -1)
	if done {
		return code
	}
	out, errOut := &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(errOut, "herald sub: "+format+"\nRun 'herald sub --help' for usage.\n", a...)
		return exitUsage
	}
	tr, err := client.ParseTransport(*transport)
	if err != nil {
		return usage("--transport %q: want websocket, sse, longpoll, shortpoll or webrtc", *transport)
	}
	for _, ch := range channels {
		if !protocol.ValidChannel(ch) {
			return usage("invalid channel name %q", ch)
		}
	}
	channels = protocol.CanonicalChannels(channels)
	var from map[string]client.StreamPosition
	if *since != "" {
		if from, err = client.ParsePositions(*since, channels...); err != nil {
			return usage("--since %q: want one <epoch>-<offset> per channel, in sorted channel order, joined by '.'", *since)
		}
	}
	if *count < 0 {
		return usage("--count must not be negative")
	}

	if !fs.Changed("token") {
		*token = os.Getenv("HERALD_TOKEN")
	}

	s := &subscriber{out: out, errOut: errOut, count: *count, finished: make(chan int, 1)}
	base := serverURL(fs, *srv)
	c, err := client.New(client.Config{
		URL:            base,
		Transport:      tr,
		Name:           "herald sub",
		Token:          *token,
		OnConnected:    s.connected,
		OnConnecting:   s.connecting,
		OnDisconnected: s.disconnected,
		OnError:        func(e client.ErrorEvent) { fmt.Fprintf(errOut, "herald sub: %v\n", e.Err) },

		OnServerSubscribed:   s.subscribed,
		OnServerPublication:  s.publication,
		OnServerUnsubscribed: s.unsubscribed,
	})
	if err != nil {
		return usage("%v", err)
	}
	defer c.Close()
	subs := make([]*client.Subscription, len(channels))
	for i, ch := range channels {
		cfg := client.SubscriptionConfig{
			OnSubscribed:   s.subscribed,
			OnPublication:  s.publication,
			OnUnsubscribed: s.unsubscribed,
		}
		if p, ok := from[ch]; ok {
			cfg.Since = &p
		}
		if subs[i], err = c.NewSubscription(ch, cfg); err != nil {
			return usage("%v", err)
		}
	}
	fmt.Fprintf(errOut, "herald sub: connecting to %s over %v\n", base, tr)
	code = s.run(ctx, c, subs)
	_ = c.Close()
	s.printResume(subs)
	return code
}

// run connects, subscribes and waits for the end.
func (s *subscriber) run(ctx context.Context, c *client.Client, subs []*client.Subscription) int {
	if err := c.Connect(ctx); err != nil {
		return s.failed(ctx, err)
	}
	for _, sub := range subs {
		if err := sub.Subscribe(ctx); err != nil {
			return s.failed(ctx, err)
		}
	}
	s.started.Store(true)
	select {
	case <-ctx.Done():
		return exitOK
	case code := <-s.finished:
		return code
	}
}

// subscriber holds the state of the handlers of one herald sub run. They
// are called one at a time, on the client's handler goroutine.
type subscriber struct {
	out, errOut io.Writer
	count       int
	printed     atomic.Int64
	// started: every Subscribe returned; refusals from then on are
	// reported by the handler rather than by run.
	started  atomic.Bool
	connects int
	finished chan int // the exit code, once the run must end
}

// finish ends the run with code, once.
func (s *subscriber) finish(code int) {
	select {
	case s.finished <- code:
	default:
	}
}

// failed reports why Connect or Subscribe failed and picks the exit code.
func (s *subscriber) failed(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		return exitOK // interrupted while connecting
	}
	fmt.Fprintf(s.errOut, "herald sub: %v\n", err)
	return exitCodeOf(err)
}

func exitCodeOf(err error) int {
	var e *client.Error
	switch {
	case errors.As(err, &e) && denied(e.Code):
		return exitDenied
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrTokenExpired):
		return exitDenied
	}
	return exitError
}

// printedPublication is the JSON line of one publication.
type printedPublication struct {
	Channel string             `json:"channel"`
	Offset  uint64             `json:"offset"`
	Epoch   string             `json:"epoch,omitempty"`
	Data    json.RawMessage    `json:"data"`
	Info    *client.ClientInfo `json:"info,omitempty"`
	Tags    map[string]string  `json:"tags,omitempty"`
	Time    string             `json:"time"`
}

func (s *subscriber) publication(p client.Publication) {
	if s.count > 0 && s.printed.Load() >= int64(s.count) {
		return // done; the client is closing
	}
	line, err := protocol.Marshal(printedPublication{
		Channel: p.Channel, Offset: p.Offset, Epoch: p.Epoch, Data: p.Data, Info: p.Info, Tags: p.Tags,
		Time: p.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
	if err != nil {
		fmt.Fprintf(s.errOut, "herald sub: publication %d of %s does not encode: %v\n", p.Offset, p.Channel, err)
		return
	}
	fmt.Fprintf(s.out, "%s\n", line)
	if n := s.printed.Add(1); s.count > 0 && n == int64(s.count) {
		s.finish(exitOK)
	}
}

func (s *subscriber) connected(e client.ConnectedEvent) {
	s.connects++
	if s.connects > 1 {
		fmt.Fprintf(s.errOut, "herald sub: reconnected over %v\n", e.Transport)
	}
}

func (s *subscriber) connecting(e client.ConnectingEvent) {
	if s.connects == 0 {
		return // the first connect, announced already
	}
	why := e.Reason
	if e.Err != nil {
		why = fmt.Sprintf("%s %v", why, e.Err)
	}
	if e.Code != 0 {
		why = fmt.Sprintf("%s (code %d)", why, e.Code)
	}
	fmt.Fprintf(s.errOut, "herald sub: connection lost: %s; reconnecting\n", why)
}

func (s *subscriber) disconnected(e client.DisconnectedEvent) {
	fmt.Fprintf(s.errOut, "herald sub: disconnected for good: %v\n", e.Err)
	s.finish(exitCodeOf(e.Err))
}

func (s *subscriber) subscribed(e client.SubscribedEvent) {
	switch {
	case e.WasRecovering && e.Recovered:
		fmt.Fprintf(s.errOut, "herald sub: %s resumed from %v: recovered\n", e.Channel, e.Position)
	case e.WasRecovering:
		fmt.Fprintf(s.errOut, "herald sub: %s NOT recovered: publications were lost (history expired or the store was reset); continuing from %v\n", e.Channel, e.Position)
	case e.Position.IsZero():
		fmt.Fprintf(s.errOut, "herald sub: subscribed to %s\n", e.Channel)
	default:
		fmt.Fprintf(s.errOut, "herald sub: subscribed to %s at %v\n", e.Channel, e.Position)
	}
}

func (s *subscriber) unsubscribed(e client.UnsubscribedEvent) {
	if e.Err != nil && s.started.Load() {
		fmt.Fprintf(s.errOut, "herald sub: %s: %v\n", e.Channel, e.Err)
		s.finish(exitCodeOf(e.Err))
	}
}

// printResume prints the position to resume from with --since, when every
// channel has one.
func (s *subscriber) printResume(subs []*client.Subscription) {
	ps := make(map[string]client.StreamPosition, len(subs))
	for _, sub := range subs {
		p := sub.Position()
		if p.IsZero() {
			return
		}
		ps[sub.Channel()] = p
	}
	fmt.Fprintf(s.errOut, "herald sub: resume with --since %s\n", client.FormatPositions(ps))
}

// lockedWriter serializes writes from the handler goroutine and the
// command's own.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
