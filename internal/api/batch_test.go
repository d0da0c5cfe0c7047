package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
