package node

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// recordingSink keeps the events of the types in mask.
type recordingSink struct {
	mask EventType
	mu   sync.Mutex
	got  []Event
}

func (r *recordingSink) Wants(t EventType, channel string) bool { return r.mask&t != 0 }

func (r *recordingSink) Emit(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mask&ev.Type == 0 {
		panic("emitted an event the sink does not want: " + ev.Type.String())
	}
	r.got = append(r.got, ev)
}

func (r *recordingSink) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func types(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type.String())
	}
	return out
}

// One session's life produces its events in order, each filled in.
func TestEventsOfASession(t *testing.T) {
	sink := &recordingSink{mask: AllEvents}
	n := newTestNode(t, Config{Events: sink, Namespaces: []NamespaceOptions{
		{Name: "room", HistorySize: 10, HistoryTTL: time.Hour, Presence: true, Subscribe: AccessAnyone},
	}})
	ctx := context.Background()
	const ch = "room:1"
	p := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "alice", Info: json.RawMessage(`{"name":"A"}`)}})
	if err := p.s.SubscribeStream(ctx, []string{ch}, nil, nil); err != nil {
		t.Fatal(err)
	}
	res := publish(t, n, ch, 7)
	if err := p.s.Unsubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := p.s.SubscribeStream(ctx, []string{ch}, nil, nil); err != nil {
		t.Fatal(err)
	}
	p.s.Close(protocol.DisconnectForced)
	<-p.done

	want := []string{"connect", "occupied", "subscribe", "join", "publish", "unsubscribe", "leave", "vacated",
		"occupied", "subscribe", "join", "unsubscribe", "leave", "vacated", "disconnect"}
	testkit.WaitFor(t, 5*time.Second, "every event", func() bool { return len(sink.events()) >= len(want) })
	evs := sink.events()
	if got := types(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant   %v", got, want)
	}
	for _, ev := range evs {
		if ev.Node != n.ID() || ev.Time.IsZero() {
			t.Errorf("%s: node %q time %v", ev.Type, ev.Node, ev.Time)
		}
		switch ev.Type {
		case EventConnect, EventSubscribe, EventJoin:
			if ev.Client != p.s.ID() || ev.User != "alice" || ev.Transport != "test" || string(ev.Info) != `{"name":"A"}` {
				t.Errorf("%s: %+v", ev.Type, ev)
			}
		case EventPublish:
			if ev.Channel != ch || ev.Offset != res.Offset || ev.Epoch != res.Epoch || string(ev.Data) != `{"i":7}` {
				t.Errorf("publish: %+v", ev)
			}
		case EventDisconnect:
			if ev.Code != protocol.DisconnectForced.Code || ev.Reason != protocol.DisconnectForced.Reason || ev.User != "alice" {
				t.Errorf("disconnect: %+v", ev)
			}
		}
		if ev.Type != EventConnect && ev.Type != EventDisconnect && ev.Channel != ch {
			t.Errorf("%s on channel %q", ev.Type, ev.Channel)
		}
	}
}

// A WebSocket-style session reports its connect command; a client publish
// names its client; a sink that wants only some types is never handed the
// others (recordingSink panics on those).
func TestEventsFiltered(t *testing.T) {
	sink := &recordingSink{mask: EventConnect | EventPublish | EventDisconnect}
	n := newTestNode(t, Config{Events: sink})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.HandleFrame(context.Background(), command(1, "connect", nil))
	p.s.HandleFrame(context.Background(), command(2, "publish", map[string]any{"channel": "c", "data": map[string]int{"x": 1}}))
	testkit.WaitFor(t, 5*time.Second, "the publish reply", func() bool { _, ok := replyTo(p.items(), 2); return ok })
	p.s.Close(protocol.DisconnectShutdown)
	<-p.done
	evs := sink.events()
	if got := types(evs); !slices.Equal(got, []string{"connect", "publish", "disconnect"}) {
		t.Fatalf("events %v", got)
	}
	if evs[1].Client != p.s.ID() || string(evs[1].Data) != `{"x":1}` {
		t.Errorf("publish event %+v", evs[1])
	}
}

// A client that goes away on its own is reported without a server close code.
func TestEventsClientGone(t *testing.T) {
	sink := &recordingSink{mask: AllEvents}
	n := newTestNode(t, Config{Events: sink})
	s, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Finish()
	evs := sink.events()
	if got := types(evs); !slices.Equal(got, []string{"connect", "disconnect"}) || evs[1].Code != 0 || evs[1].Reason != "" {
		t.Fatalf("events %+v", evs)
	}
}

func TestEventTypeNames(t *testing.T) {
	for i := range len(eventNames) {
		et := EventType(1 << i)
		back, ok := ParseEventType(et.String())
		if !ok || back != et || AllEvents&et == 0 {
			t.Errorf("%d: %q parses as %v %v", et, et.String(), back, ok)
		}
	}
	if _, ok := ParseEventType("nope"); ok {
		t.Error("unknown name parsed")
	}
}

// A sink that wants no publish events costs a publish no allocation: the
// event is never built.
func TestPublishWithUnwantedEventsAllocatesNoMore(t *testing.T) {
	measure := func(sink EventSink) float64 {
		n := newTestNode(t, Config{Events: sink})
		ctx, data := context.Background(), json.RawMessage(`{"x":1}`)
		return testing.AllocsPerRun(500, func() {
			if _, err := n.Publish(ctx, protocol.PublishRequest{Channel: "c", Data: data}); err != nil {
				t.Fatal(err)
			}
		})
	}
	without, with := measure(nil), measure(&recordingSink{mask: AllEvents &^ EventPublish})
	if with > without {
		t.Errorf("a publish allocates %v times with a sink that wants no publish events, %v without a sink", with, without)
	}
}

// Long polls waiting on a channel neither occupy nor vacate it: only
// session subscriptions do, even when a poll holds the channel before and
// after them.
func TestOccupancyIgnoresPolls(t *testing.T) {
	sink := &recordingSink{mask: EventOccupied | EventVacated}
	n := newTestNode(t, Config{Events: sink})
	ctx := context.Background()
	const ch = "room"
	res, poll, err := n.StartPoll(ctx, Credentials{}, PollRequest{Channels: []string{ch}, Timeout: 10 * time.Second}, func() {})
	if err != nil || poll == nil {
		t.Fatalf("the poll does not wait: %+v, %v", res, err)
	}
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{ch}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.s.Unsubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	poll.Close()
	if got := types(sink.events()); !slices.Equal(got, []string{"occupied", "vacated"}) {
		t.Fatalf("events %v, want one occupied and one vacated", got)
	}
}
