package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

// An event stream in chunked encoding, flushed mid-line, is read as it
// comes: whichever way a server frames it, the bench sees the same events.
func TestSSEChunkedStream(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		flush := func(s string) {
			fmt.Fprint(w, s)
			w.(http.Flusher).Flush()
		}
		flush("retry: 2000\n\nevent: subscribed\ndata: {\"type\":\"subscribed\",\"channel\":\"c\"}\n\n")
		<-release
		for i := 1; i <= 3; i++ {
			pub := fmt.Sprintf(`data: {"type":"publication","channel":"c","offset":%d,"data":%s,"time":1}`, i, appendPayload(nil, uint64(i), time.Now().UnixNano(), true, 64))
			flush("id: e-" + fmt.Sprint(i) + "\n" + pub[:20])
			flush(pub[20:] + "\n\n: keepalive\n\n")
		}
		<-r.Context().Done()
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	f, err := newFleet(FleetSpec{Server: "http://" + ln.Addr().String(), Transport: TransportSSE, Prefix: "c", Channels: 1, Count: 1, Sources: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.open(context.Background())
	if f.connected.Load() != 1 {
		t.Fatalf("not subscribed: %v", f.result(nil, 0).Errors)
	}
	close(release)
	testkit.WaitFor(t, 5*time.Second, "three publications", func() bool { return f.measured.Load() == 3 })
	if f.duplicated.Load() != 0 || f.outOfOrder.Load() != 0 {
		t.Errorf("duplicated %d, out of order %d", f.duplicated.Load(), f.outOfOrder.Load())
	}
	f.close()
	srv.Close()
}
