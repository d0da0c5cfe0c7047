package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/objects:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Retained history must cost heap objects per channel, not per publication:
// that is what keeps the collector's mark phase short under a large history.
func TestHistoryHeapObjectsPerChannel(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	defer e.Close(ctx)
	const channels, pubs = 10, 50_000
	names := make([]string, channels)
	for i := range names {
		names[i] = fmt.Sprintf("objects:%d", i)
	}
	opts := engine.PublishOptions{HistorySize: pubs, HistoryTTL: time.Hour}
	runtime.GC()
	before := heapObjects()
	for i := range pubs {
		if _, err := e.Publish(ctx, names[i%channels], []byte(`{"n":12345}`), opts); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	grown := int64(heapObjects()) - int64(before)
	// A pointer per publication would add at least one object each (pubs);
	// a few per channel, plus the runtime's and test framework's own noise,
	// stays far below a tenth of that.
	if grown > pubs/10 {
		t.Fatalf("retaining %d publications in %d channels added %d heap objects", pubs, channels, grown)
	}
	res, err := e.History(ctx, names[3], engine.HistoryQuery{Limit: -1})
	if err != nil || len(res.Publications) != pubs/channels {
		t.Fatalf("history of %s: %d publications, %v; want %d", names[3], len(res.Publications), err, pubs/channels)
	}
}

// pubsHandler records every delivered publication.
type pubsHandler struct {
	mu   sync.Mutex
	pubs []*protocol.Publication
}

func (h *pubsHandler) HandlePublication(pub *protocol.Publication, _ string) {
	h.mu.Lock()
	h.pubs = append(h.pubs, pub)
	h.mu.Unlock()
}
func (h *pubsHandler) HandleJoin(string, protocol.ClientInfo)  {}
func (h *pubsHandler) HandleLeave(string, protocol.ClientInfo) {}
func (h *pubsHandler) HandleControl([]byte)                    {}

func (h *pubsHandler) delivered() []*protocol.Publication {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pubs)
}

func dataFor(offset uint64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"offset":%d,"pad":"%0*d"}`, offset, int(offset%23), 0))
}

// A publication handed out by History or delivered live must keep its data
// while the channel's history moves on: later publishes, size trims,
// reallocations of the arena and RemoveHistory.
func TestPublicationsOutliveArenaChanges(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	defer e.Close(ctx)
	h := &pubsHandler{}
	if err := e.Start(ctx, "n1", h); err != nil {
		t.Fatal(err)
	}
	const ch = "outlive"
	if err := e.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	var kept []*protocol.Publication
	var top uint64
	publish := func(n, size int) {
		t.Helper()
		for range n {
			top++
			if _, err := e.Publish(ctx, ch, dataFor(top), engine.PublishOptions{HistorySize: size}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, res.Publications...)
	}
	publish(50, 100)
	publish(500, 7) // trims every publish and reallocates the arena
	if err := e.RemoveHistory(ctx, ch); err != nil {
		t.Fatal(err)
	}
	publish(300, 1000)
	publish(10, 3) // a shrunken size compacts the arena

	const total = 50 + 500 + 300 + 10
	var live []*protocol.Publication
	testkit.WaitFor(t, 10*time.Second, "every publication delivered", func() bool {
		live = h.delivered()
		return len(live) == total
	})
	for i, p := range live {
		if p.Offset != uint64(i+1) || string(p.Data) != string(dataFor(p.Offset)) {
			t.Fatalf("delivered #%d: offset %d data %s", i, p.Offset, p.Data)
		}
	}
	for _, p := range kept {
		if p.Channel != ch || string(p.Data) != string(dataFor(p.Offset)) {
			t.Fatalf("history publication %s@%d now has data %s", p.Channel, p.Offset, p.Data)
		}
	}
	// Appending to a delivered publication's data must not reach the
	// arena, which holds the following record.
	for _, p := range live[len(live)-3:] {
		_ = append(p.Data, `!!!!!!!!!!!!!!!!!`...)
	}
	res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
	if err != nil || len(res.Publications) != 3 {
		t.Fatalf("history: %d publications, %v", len(res.Publications), err)
	}
	for _, p := range res.Publications {
		if string(p.Data) != string(dataFor(p.Offset)) {
			t.Fatalf("after appending to delivered data, history %d has %s", p.Offset, p.Data)
		}
	}
}

// modelPub is what the reference model keeps of a publication.
type modelPub struct {
	offset  uint64
	pub     *protocol.Publication
	expired bool
}

// History must answer every query as a plain list of publications would,
// across size trims, expiries that leave an unexpired entry in front of
// expired ones, RemoveHistory, and records of every shape.
func TestHistoryMatchesModel(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	defer e.Close(ctx)
	const ch = "model"
	rng := rand.New(rand.NewPCG(1, 2))
	var model []modelPub
	var top uint64
	for step := range 5000 {
		switch r := rng.IntN(100); {
		case r < 2:
			if err := e.RemoveHistory(ctx, ch); err != nil {
				t.Fatal(err)
			}
			model = nil
		case r < 70:
			size := 1 + rng.IntN(40)
			opts := engine.PublishOptions{HistorySize: size}
			// A TTL under a millisecond expires on publish; an hour
			// outlives the test.
			expired := false
			switch rng.IntN(4) {
			case 0:
				opts.HistoryTTL, expired = time.Nanosecond, true
			case 1:
				opts.HistoryTTL = time.Hour
			}
			if rng.IntN(3) == 0 {
				opts.Info = &protocol.ClientInfo{Client: fmt.Sprint("c", step), User: "u", Info: json.RawMessage(`{"i":1}`)}
			}
			if rng.IntN(3) == 0 {
				opts.Tags = map[string]string{"step": fmt.Sprint(step), "empty": ""}
			}
			data := json.RawMessage(fmt.Sprintf(`"%0*d"`, rng.IntN(300), step))
			pos, err := e.Publish(ctx, ch, data, opts)
			if err != nil {
				t.Fatal(err)
			}
			top++
			if pos.Offset != top {
				t.Fatalf("step %d: offset %d, want %d", step, pos.Offset, top)
			}
			model = append(model, modelPub{offset: top, expired: expired, pub: &protocol.Publication{
				Channel: ch, Offset: top, Data: data, Info: opts.Info, Tags: opts.Tags,
			}})
			model = model[max(len(model)-size, 0):]
			for len(model) > 0 && model[0].expired {
				model = model[1:]
			}
		default:
			q := engine.HistoryQuery{Limit: rng.IntN(12) - 1, Reverse: rng.IntN(2) == 0}
			if rng.IntN(3) > 0 {
				q.Since = &protocol.StreamPosition{Offset: top - min(top, uint64(rng.IntN(50)))}
			}
			res, err := e.History(ctx, ch, q)
			if err != nil {
				t.Fatal(err)
			}
			if want := modelHistory(model, q); !samePublications(res.Publications, want) {
				t.Fatalf("step %d: history %+v: got offsets %v, want %v", step, q, offsets(res.Publications), offsets(want))
			}
		}
	}
}

func modelHistory(model []modelPub, q engine.HistoryQuery) []*protocol.Publication {
	var out []*protocol.Publication
	for i := range model {
		m := model[i]
		if q.Reverse {
			m = model[len(model)-1-i]
		}
		if q.Since != nil && (q.Reverse && m.offset >= q.Since.Offset || !q.Reverse && m.offset <= q.Since.Offset) {
			continue
		}
		if q.Limit >= 0 && len(out) == q.Limit {
			break
		}
		if !m.expired {
			out = append(out, m.pub)
		}
	}
	return out
}

func samePublications(got, want []*protocol.Publication) bool {
	return slices.EqualFunc(got, want, func(g, w *protocol.Publication) bool {
		return g.Channel == w.Channel && g.Offset == w.Offset && string(g.Data) == string(w.Data) &&
			maps.Equal(g.Tags, w.Tags) && (g.Info == nil) == (w.Info == nil) &&
			(g.Info == nil || g.Info.Client == w.Info.Client && g.Info.User == w.Info.User && string(g.Info.Info) == string(w.Info.Info))
	})
}

func offsets(pubs []*protocol.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// A channel's arena must stay within a small multiple of its live records,
// both while history slides and after it shrinks at once.
func TestArenaTracksLiveBytes(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	defer e.Close(ctx)
	const ch = "arena"
	c := func() *channel {
		c := e.channels.lock(ch, time.Now().UnixMilli())
		c.mu.Unlock()
		return c
	}
	data := json.RawMessage(`{"text":"a publication of some ordinary length"}`)
	for i := range 10_000 {
		if _, err := e.Publish(ctx, ch, data, engine.PublishOptions{HistorySize: 100}); err != nil {
			t.Fatal(err)
		}
		if c := c(); i > 200 && c.arenaCap > 3*len(c.arena) {
			t.Fatalf("publish %d: arena of %d live bytes holds %d", i, len(c.arena), c.arenaCap)
		}
	}
	if _, err := e.Publish(ctx, ch, data, engine.PublishOptions{HistorySize: 2}); err != nil {
		t.Fatal(err)
	}
	if c := c(); c.arenaCap > 4*len(c.arena) || cap(c.hist) > 4*len(c.hist) {
		t.Fatalf("after shrinking to 2 publications: arena %d/%d bytes, index %d/%d entries",
			len(c.arena), c.arenaCap, len(c.hist), cap(c.hist))
	}
}
