package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
		req := httptest.NewRequest(http.MethodPost, "/api/batch", strings.NewReader(body))
		req.Header.Set("Authorization", "apikey "+testKey)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
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
