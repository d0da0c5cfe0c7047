package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
)

// nbio's websocket package starts a default engine's worker pool at init;
// ignoring what runs before the first test spares those and still catches
// anything the tests leave behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }

// startServer runs an in-process server on a memory engine in dev mode and
// stops it when the test ends.
func startServer(t *testing.T, tweak func(*server.Config)) string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = "memory"
	cfg.Dev = true
	cfg.APIKey = apiKey
	cfg.LogLevel = "error"
	if tweak != nil {
		tweak(&cfg)
	}
	return servertest.Start(t, cfg).URL
}

func serverPublish(t *testing.T, base, channel string, seq int) ack {
	t.Helper()
	var a ack
	if err := apiCall(httpClient, base, "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"seq": seq}}, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// reader consumes a conn's events one channel at a time, keeping events of
// other channels for later reads, as an application would route them.
type reader struct {
	conn
	stash []event
}

func newReader(c conn, err error) (*reader, error) {
	if err != nil {
		return nil, err
	}
	return &reader{conn: c}, nil
}

// next returns the next event matching keep, within the deadline.
func (r *reader) next(t *testing.T, deadline <-chan time.Time, keep func(event) bool) (event, bool) {
	for i, e := range r.stash {
		if keep(e) {
			r.stash = append(r.stash[:i], r.stash[i+1:]...)
			return e, true
		}
	}
	for {
		select {
		case e := <-r.events():
			if keep(e) {
				return e, true
			}
			r.stash = append(r.stash, e)
		case <-deadline:
			return event{}, false
		}
	}
}

// collect reads want publications of channel, failing on a duplicate or
// out-of-order offset.
func collect(t *testing.T, r *reader, channel string, after uint64, want int) []event {
	t.Helper()
	var got []event
	last := after
	deadline := time.After(20 * time.Second)
	for len(got) < want {
		e, ok := r.next(t, deadline, func(e event) bool { return e.kind == "publication" && e.channel == channel })
		if !ok {
			t.Fatalf("channel %s: %d of %d publications after 20s", channel, len(got), want)
		}
		if e.offset != last+1 {
			t.Fatalf("channel %s: offset %d after %d (lost or repeated)", channel, e.offset, last)
		}
		last = e.offset
		got = append(got, e)
	}
	return got
}

// expectSubscribed waits for the subscription event of channel.
func expectSubscribed(t *testing.T, r *reader, channel string) event {
	t.Helper()
	e, ok := r.next(t, time.After(10*time.Second), func(e event) bool { return e.kind == "subscribed" && e.channel == channel })
	if !ok {
		t.Fatalf("no subscribed event for %s", channel)
	}
	return e
}

// TestTransportConformance runs the same scenarios over every transport.
func TestTransportConformance(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			base := startServer(t, func(c *server.Config) {
				c.Namespaces = append(c.Namespaces, node.NamespaceOptions{Name: "small", HistorySize: 3, HistoryTTL: time.Hour,
					Subscribe: node.AccessAnyone, HistoryAccess: node.AccessAnyone})
			})
			ctx := context.Background()

			t.Run("receive in order", func(t *testing.T) {
				c, err := newReader(d.open(ctx, base, []string{"conf:order"}, nil))
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()
				for i := range 300 {
					serverPublish(t, base, "conf:order", i)
				}
				got := collect(t, c, "conf:order", 0, 300)
				for i, e := range got {
					var d struct{ Seq int }
					if err := json.Unmarshal(e.data, &d); err != nil || d.Seq != i {
						t.Fatalf("publication %d carries %s", i, e.data)
					}
				}
			})

			t.Run("publish as client", func(t *testing.T) {
				c, err := newReader(d.open(ctx, base, []string{"conf:pub"}, nil))
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()
				watcher, err := newReader(openWebSocket(ctx, base, []string{"conf:pub"}, nil))
				if err != nil {
					t.Fatal(err)
				}
				defer watcher.close()
				for i := range 5 {
					if err := c.publish(ctx, "conf:pub", fmt.Sprintf(`{"from":%q,"i":%d}`, d.name, i)); err != nil {
						t.Fatal(err)
					}
				}
				collect(t, c, "conf:pub", 0, 5)
				collect(t, watcher, "conf:pub", 0, 5)
			})

			t.Run("resume after disconnect on two channels", func(t *testing.T) {
				chans := []string{"conf:rb", "conf:ra"}
				c, err := newReader(d.open(ctx, base, chans, nil))
				if err != nil {
					t.Fatal(err)
				}
				for i := range 10 {
					serverPublish(t, base, "conf:ra", i)
					serverPublish(t, base, "conf:rb", i)
				}
				collect(t, c, "conf:ra", 0, 10)
				collect(t, c, "conf:rb", 0, 10)
				resume := c.resume()
				c.close()
				for i := 10; i < 25; i++ {
					serverPublish(t, base, "conf:ra", i)
				}
				serverPublish(t, base, "conf:rb", 10)
				c2, err := newReader(d.open(ctx, base, chans, resume))
				if err != nil {
					t.Fatal(err)
				}
				defer c2.close()
				for _, ch := range []string{"conf:ra", "conf:rb"} {
					if e := expectSubscribed(t, c2, ch); !e.recovered || !e.wasRecovering {
						t.Fatalf("%s: resume not recovered: %+v", ch, e)
					}
				}
				collect(t, c2, "conf:ra", 10, 15)
				collect(t, c2, "conf:rb", 10, 1)
				serverPublish(t, base, "conf:ra", 25)
				collect(t, c2, "conf:ra", 25, 1)
			})

			t.Run("not recovered signal", func(t *testing.T) {
				for i := range 3 {
					serverPublish(t, base, "conf:nr", i)
				}
				c, err := newReader(d.open(ctx, base, []string{"conf:nr"}, staleResume(d.name, "conf:nr")))
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()
				if e := expectSubscribed(t, c, "conf:nr"); e.recovered || !e.wasRecovering {
					t.Fatalf("stale position: %+v, want recovered false", e)
				}
				// Live data continues from now, nothing replayed.
				serverPublish(t, base, "conf:nr", 3)
				collect(t, c, "conf:nr", 3, 1)
			})

			t.Run("position older than history not recovered", func(t *testing.T) {
				// The namespace keeps 3 publications; the client leaves
				// after offset 1 and 5 more are published, so offset 2 has
				// left history though the epoch is the channel's own.
				const channel = "small:old"
				c, err := newReader(d.open(ctx, base, []string{channel}, nil))
				if err != nil {
					t.Fatal(err)
				}
				serverPublish(t, base, channel, 1)
				resume := collect(t, c, channel, 0, 1)[0].token
				c.close()
				for i := 2; i <= 6; i++ {
					serverPublish(t, base, channel, i)
				}
				c, err = newReader(d.open(ctx, base, []string{channel}, resume))
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()
				if e := expectSubscribed(t, c, channel); e.recovered || !e.wasRecovering {
					t.Fatalf("position 1 with history from 4: %+v, want recovered false", e)
				}
				// Live data continues from now, nothing replayed.
				serverPublish(t, base, channel, 7)
				collect(t, c, channel, 6, 1)
			})

			t.Run("invalid channel is an error", func(t *testing.T) {
				_, err := d.open(ctx, base, []string{"bad channel"}, nil)
				var ce *clientError
				if !errors.As(err, &ce) || ce.code != 112 {
					t.Fatalf("open: %v, want error code 112", err)
				}
			})

			t.Run("recovery race under concurrent publishers", func(t *testing.T) {
				raceResume(t, d, base)
			})
		})
	}
}

// staleResume is a resume token in each transport's form for a position in
// an epoch the channel never had.
func staleResume(transport, channel string) any {
	if transport == "websocket" {
		return map[string]protocol.StreamPosition{channel: {Epoch: "gone", Offset: 1}}
	}
	return "gone-1"
}

// raceResume publishes from several goroutines while the client disconnects
// and resumes again and again; across all its connections it must see every
// offset exactly once, in order.
func raceResume(t *testing.T, d driver, base string) {
	const channel, publishers, each = "conf:race", 4, 150
	ctx := context.Background()
	c, err := d.open(ctx, base, []string{channel}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var a ack
				if err := apiCall(httpClient, base, "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"p": p, "i": i}}, &a); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var last uint64
	total := publishers * each
	reconnects := 0
	deadline := time.After(60 * time.Second)
	for int(last) < total {
		select {
		case e := <-c.events():
			if e.kind == "subscribed" && e.wasRecovering && !e.recovered {
				t.Fatalf("resume at offset %d not recovered", last)
			}
			if e.kind != "publication" {
				continue
			}
			if e.offset != last+1 {
				t.Fatalf("offset %d after %d (lost or repeated) after %d reconnects", e.offset, last, reconnects)
			}
			last = e.offset
			if last%40 == 0 {
				// Resume from the last publication consumed, not from the
				// connection's newest position: the client may hold more.
				resume := e.token
				c.close()
				if c, err = d.open(ctx, base, []string{channel}, resume); err != nil {
					t.Fatal(err)
				}
				reconnects++
			}
		case <-deadline:
			t.Fatalf("reached offset %d of %d", last, total)
		}
	}
	c.close()
	if reconnects < 10 {
		t.Fatalf("only %d reconnects", reconnects)
	}
}
