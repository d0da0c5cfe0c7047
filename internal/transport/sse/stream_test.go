package sse

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

func newTestStream(channels []string, resume []protocol.StreamPosition) (*stream, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	// The recorder takes no write deadlines: the stream must still work.
	cfg := &Config{Logger: slog.New(slog.DiscardHandler), WriteTimeout: time.Second}
	st := newStream(cfg, channels, resume)
	st.sink = newResponseSink(rec, cfg)
	return st, rec
}

func TestFrameWithLineBreaksStaysOneEvent(t *testing.T) {
	st, rec := newTestStream([]string{"a"}, nil)
	frame := []byte("{\n\"x\":1,\r\n\"y\":\r2}")
	err := st.write([]node.Item{{Kind: node.ItemFrame, Push: "join", Channel: "a", Frame: frame}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "event: join\ndata: {\ndata: \"x\":1,\ndata: \"y\":\ndata: 2}\n\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestNoIDWhileAPositionIsUnknown(t *testing.T) {
	st, rec := newTestStream([]string{"a", "b"}, nil)
	items := []node.Item{
		{Kind: node.ItemSubscribed, Push: "subscribed", Channel: "a", Epoch: "e1", Offset: 3, Frame: []byte(`{}`)},
		// An engine that gives b no epoch: its position cannot be written.
		{Kind: node.ItemSubscribed, Push: "subscribed", Channel: "b", Frame: []byte(`{}`)},
		{Kind: node.ItemPublication, Push: "publication", Channel: "a", Epoch: "e1", Offset: 4, Frame: []byte(`{}`)},
		// A reply cannot occur on an SSE session and is not written.
		{Kind: node.ItemFrame, Frame: []byte(`{"id":1}`)},
	}
	if err := st.write(items, &protocol.DisconnectShutdown); err != nil {
		t.Fatal(err)
	}
	want := "event: subscribed\ndata: {}\n\n" +
		"event: subscribed\ndata: {}\n\n" +
		"data: {}\n\n" +
		`event: disconnect` + "\n" + `data: {"type":"disconnect","code":4000,"reason":"server shutdown","reconnect":true}` + "\n\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
