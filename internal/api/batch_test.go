package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func TestBatch(t *testing.T) {
	srv, n := apiServer(t, Config{Key: testKey})
	// Interleave three channels: each channel's publications must land in
	// request order, whatever runs in parallel.
	var pubs []string
	for i := range 30 {
		pubs = append(pubs, fmt.Sprintf(`{"channel":"b:%d","data":{"i":%d}}`, i%3, i))
	}
	pubs = append(pubs, `{"channel":"bad channel","data":1}`)
	var res BatchResult
	wantOK(t, post(t, srv.URL+"/api/batch", testKey, `{"publications":[`+strings.Join(pubs, ",")+`]}`), &res)
	if len(res.Results) != 31 {
		t.Fatalf("%d results for 31 publications", len(res.Results))
	}
	for i, r := range res.Results[:30] {
		if r.Error != nil || r.PublishResult == nil || r.Offset != uint64(i/3+1) {
			t.Fatalf("result %d: %+v, want offset %d", i, r, i/3+1)
		}
	}
	if last := res.Results[30]; last.Error == nil || last.Error.Code != protocol.ErrInvalidChannel.Code {
		t.Fatalf("bad channel result: %+v", last)
	}
	for ch := range 3 {
		hist, err := n.History(context.Background(), protocol.HistoryRequest{Channel: fmt.Sprintf("b:%d", ch)})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range hist.Publications {
			if want := fmt.Sprintf(`{"i":%d}`, j*3+ch); string(p.Data) != want {
				t.Fatalf("b:%d offset %d holds %s, want %s", ch, p.Offset, p.Data, want)
			}
		}
	}
	wantError(t, post(t, srv.URL+"/api/batch", testKey, `{"publications":[]}`), http.StatusBadRequest, protocol.ErrBadRequest.Code)
	wantError(t, post(t, srv.URL+"/api/batch", "", `{"publications":[]}`), http.StatusUnauthorized, protocol.ErrUnauthorized.Code)
	many := strings.Repeat(`{"channel":"a","data":1},`, MaxBatchPublications) + `{"channel":"a","data":1}`
	wantError(t, post(t, srv.URL+"/api/batch", testKey, `{"publications":[`+many+`]}`), http.StatusUnprocessableEntity, protocol.ErrLimitExceeded.Code)
}

// More channels than the batch publishes at once: every channel still gets
// its publications in request order, each exactly once.
func TestBatchManyChannels(t *testing.T) {
	srv, _ := apiServer(t, Config{Key: testKey})
	const channels, rounds = 50, 4
	var pubs []string
	for i := range channels * rounds {
		pubs = append(pubs, fmt.Sprintf(`{"channel":"m:%d","data":{"i":%d}}`, i%channels, i))
	}
	var res BatchResult
	wantOK(t, post(t, srv.URL+"/api/batch", testKey, `{"publications":[`+strings.Join(pubs, ",")+`]}`), &res)
	for i, r := range res.Results {
		if r.Error != nil || r.PublishResult == nil || r.Offset != uint64(i/channels+1) {
			t.Fatalf("result %d: %+v, want offset %d", i, r, i/channels+1)
		}
	}
}

// callBatch answers body on h directly, as the server would, and returns
// the decoded result and the raw response.
func callBatch(t testing.TB, h *Handler, body string) (BatchResult, []byte) {
	t.Helper()
	w := postBatch(h, body)
	if w.Code != http.StatusOK {
		t.Errorf("status %d: %s", w.Code, w.Body)
		return BatchResult{}, nil
	}
	var res BatchResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Errorf("body %s: %v", w.Body, err)
	}
	return res, w.Body.Bytes()
}

// postBatch answers body on h as the server would.
func postBatch(h *Handler, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/batch", strings.NewReader(body))
	req.Header.Set("Authorization", "apikey "+testKey)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// A reused batchCall decodes the next request as a fresh one would: an item
// that omits a field does not inherit it from the item at its index in the
// previous request, and the previous request's data and tags, which the
// node and its hooks may keep, are not written over.
func TestBatchCallResetForgetsTheRequest(t *testing.T) {
	decode := func(c *batchCall, body string) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if err := decodeBody(httptest.NewRecorder(), r, 1<<20, &c.req); err != nil {
			t.Fatal(err)
		}
	}
	c := new(batchCall)
	decode(c, `{"publications":[
		{"channel":"a","data":{"v":1},"ephemeral":true,"idempotency_key":"k","tags":{"t":"1"}},
		{"channel":"b","data":{"v":2},"tags":{"t":"2"}}]}`)
	first := slices.Clone(c.req.Publications)
	slot := &c.req.Publications[0]
	if !c.reset() {
		t.Fatal("a two-publication call is not kept for reuse")
	}
	decode(c, `{"publications":[{"channel":"c","data":{"v":3}},{"channel":"d","data":{"v":4},"tags":{"u":"4"}}]}`)
	if &c.req.Publications[0] != slot {
		t.Fatal("the second request was not decoded into the first one's publications")
	}
	want := []protocol.PublishRequest{
		{Channel: "c", Data: json.RawMessage(`{"v":3}`)},
		{Channel: "d", Data: json.RawMessage(`{"v":4}`), Tags: map[string]string{"u": "4"}},
	}
	if got := c.req.Publications; !reflect.DeepEqual(got, want) {
		t.Errorf("second request decoded as %+v, want %+v", got, want)
	}
	if string(first[0].Data) != `{"v":1}` || string(first[1].Data) != `{"v":2}` || !maps.Equal(first[1].Tags, map[string]string{"t": "2"}) {
		t.Errorf("decoding the second request changed the first one's data or tags: %+v", first)
	}
}

// A batchCall that grew beyond what a batch within the limits needs is not
// kept.
func TestBatchCallResetDropsLargeCalls(t *testing.T) {
	c := &batchCall{req: BatchRequest{Publications: make([]protocol.PublishRequest, 0, MaxBatchPublications+1)}}
	if c.reset() {
		t.Error("kept publications for more than MaxBatchPublications")
	}
	c = new(batchCall)
	c.buf.Grow(maxPooledResponse + 1)
	if c.reset() {
		t.Error("kept a response buffer larger than maxPooledResponse")
	}
}

// Calls through the same handler, one after another, reuse its batchCalls:
// a smaller call after a larger one answers only its own publications, and
// a publication that omits ephemeral, idempotency_key and tags is published
// without them, though the publication at its index in the call before set
// them all.
func TestBatchReuseLeaksNothing(t *testing.T) {
	n := newNode(t, node.Config{Dev: true})
	h := New(Config{Node: n, Key: testKey})
	const rounds = 20
	for round := range rounds {
		res, _ := callBatch(t, h, fmt.Sprintf(`{"publications":[
			{"channel":"leak:a","data":1,"ephemeral":true,"idempotency_key":"k%d","tags":{"t":"x"}},
			{"channel":"leak:a","data":2,"idempotency_key":"k%d","tags":{"t":"x"}},
			{"channel":"leak:a","data":3,"tags":{"t":"x"}}]}`, round, round))
		if len(res.Results) != 3 {
			t.Fatalf("round %d: %d results for 3 publications", round, len(res.Results))
		}
		res, body := callBatch(t, h, fmt.Sprintf(`{"publications":[{"channel":"leak:b","data":%d}]}`, round))
		if len(res.Results) != 1 {
			t.Fatalf("round %d: %d results for 1 publication: %s", round, len(res.Results), body)
		}
		// Ephemeral would leave offset 0, the idempotency key round 0's offset.
		if r := res.Results[0]; r.Error != nil || r.PublishResult == nil || r.Offset != uint64(round+1) {
			t.Fatalf("round %d: result %s, want offset %d", round, body, round+1)
		}
	}
	hist, err := n.History(context.Background(), protocol.HistoryRequest{Channel: "leak:b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Publications) != rounds {
		t.Fatalf("%d publications in leak:b, want %d", len(hist.Publications), rounds)
	}
	for i, p := range hist.Publications {
		if string(p.Data) != strconv.Itoa(i) || p.Tags != nil {
			t.Errorf("leak:b offset %d holds %s with tags %v, want %d without tags", p.Offset, p.Data, p.Tags, i)
		}
	}
}

// Concurrent calls, each with its own channels and sizes, get every result
// at its publication's index, each channel's publications stored in request
// order, and the response is writeJSON's encoding of the result. Under -race
// this also shows that no call's working memory is shared with another.
func TestBatchConcurrentCallsKeepOrder(t *testing.T) {
	n := newNode(t, node.Config{Dev: true})
	h := New(Config{Node: n, Key: testKey})
	const callers, calls, channels = 4, 25, 3
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			published := make([]int, channels)
			for call := range calls {
				var pubs []string
				size := 1 + (call*7+g)%12 // sizes vary, so smaller calls reuse larger ones
				bad := call % 5           // this index names an invalid channel
				for i := range size {
					if i == bad {
						pubs = append(pubs, `{"channel":"bad <channel>","data":1}`)
						continue
					}
					pubs = append(pubs, fmt.Sprintf(`{"channel":"order:%d:%d","data":[%d,%d]}`, g, i%channels, call, i))
				}
				res, body := callBatch(t, h, `{"publications":[`+strings.Join(pubs, ",")+`]}`)
				if len(res.Results) != size {
					t.Errorf("caller %d call %d: %d results for %d publications", g, call, len(res.Results), size)
					return
				}
				for i, r := range res.Results {
					if i == bad {
						if r.Error == nil || r.Error.Code != protocol.ErrInvalidChannel.Code || r.PublishResult != nil {
							t.Errorf("caller %d call %d: result %d is %+v, want the invalid channel's error", g, call, i, r)
						}
						continue
					}
					published[i%channels]++
					if r.Error != nil || r.PublishResult == nil || r.Offset != uint64(published[i%channels]) {
						t.Errorf("caller %d call %d: result %d is %+v, want offset %d", g, call, i, r, published[i%channels])
					}
				}
				if want, err := protocol.Marshal(res); err != nil || string(body) != string(want)+"\n" {
					t.Errorf("caller %d call %d: response %s, want %s", g, call, body, want)
				}
			}
		})
	}
	wg.Wait()
	for g := range callers {
		for ch := range channels {
			hist, err := n.History(context.Background(), protocol.HistoryRequest{Channel: fmt.Sprintf("order:%d:%d", g, ch)})
			if err != nil {
				t.Fatal(err)
			}
			prev := [2]int{-1, -1}
			for _, p := range hist.Publications {
				var at [2]int // call, index
				if err := json.Unmarshal(p.Data, &at); err != nil {
					t.Fatal(err)
				}
				if at[0] < prev[0] || at[0] == prev[0] && at[1] <= prev[1] {
					t.Fatalf("order:%d:%d holds call %d index %d after call %d index %d", g, ch, at[0], at[1], prev[0], prev[1])
				}
				prev = at
			}
		}
	}
}

// BenchmarkBatch is the server API's share of `herald bench spread`: one
// /api/batch call of 32 small publications to distinct channels, decoded,
// published into the memory engine and answered (no subscribers).
func BenchmarkBatch(b *testing.B) {
	n := newNode(b, node.Config{Dev: true})
	h := New(Config{Node: n, Key: testKey})
	var pubs []string
	for i := range 32 {
		pubs = append(pubs, fmt.Sprintf(`{"channel":"bench:%d","data":{"seq":%d,"at":1733540000000000000,"pad":"xxxxxxxxxxxxxxxx"}}`, i, i))
	}
	body := `{"publications":[` + strings.Join(pubs, ",") + `]}`
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if w := postBatch(h, body); w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// concurrencyEngine records how many publishes run at once; each takes
// delay, like a disk sync or a broker round trip.
type concurrencyEngine struct {
	engine.Engine
	delay         time.Duration
	running, most atomic.Int32
}

func (e *concurrencyEngine) Publish(ctx context.Context, channel string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for {
		m := e.most.Load()
		if n <= m || e.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(e.delay)
	return e.Engine.Publish(ctx, channel, data, opts)
}

// A batch over a slow engine spreads over helper goroutines, so that the
// durable engine's syncs and a broker's round trips overlap. (Over a fast
// one it stays on the calling goroutine: BenchmarkBatch.)
func TestBatchParallelWhenPublishingIsSlow(t *testing.T) {
	var pubs []string
	for i := range 16 {
		pubs = append(pubs, fmt.Sprintf(`{"channel":"c:%d","data":%d}`, i, i))
	}
	eng := &concurrencyEngine{Engine: memory.New(memory.Config{}), delay: 2 * time.Millisecond}
	srv, _ := apiServer(t, Config{Key: testKey, Node: startNode(t, node.Config{Engine: eng, Dev: true})})
	var res BatchResult
	wantOK(t, post(t, srv.URL+"/api/batch", testKey, `{"publications":[`+strings.Join(pubs, ",")+`]}`), &res)
	for i, r := range res.Results {
		if r.Error != nil || r.Offset != 1 {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if most := eng.most.Load(); most < 2 {
		t.Errorf("at most %d publishes at once over an engine taking %v each", most, eng.delay)
	}
}
