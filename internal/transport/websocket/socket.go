package websocket

import (
	"context"
	"net/http"

	"github.com/heraldrt/herald/internal/transport/duplex"
)

// The transport reaches its WebSocket library only through the small
// interfaces below and duplex.Socket, and only nbio.go knows which library
// that is, so another implementation (lxzan/gws, for one) can stand in by
// providing them.

// library upgrades HTTP requests to WebSocket connections and runs whatever
// machinery serves them (for nbio, its pollers).
type library interface {
	// upgrade performs the handshake on w and r. Before the connection can
	// produce any event, ev.Attach is called with it; after that ev receives
	// the connection's events until, and including, exactly one ev.Closed.
	// On error the library has answered the request (when it still could)
	// and ev receives no event except, possibly, Closed after Attach.
	upgrade(w http.ResponseWriter, r *http.Request, ev events) error
	start() error
	// shutdown closes every connection and stops the library's goroutines,
	// waiting for their close events to be delivered, or until ctx ends.
	shutdown(ctx context.Context) error
}

// events receives what happens on one connection; *duplex.Conn implements
// it. The library calls these methods from its own goroutines (for nbio,
// pollers), and they do not block; inbound messages of one connection
// arrive one at a time, in order.
type events interface {
	Attach(s duplex.Socket)
	Text(data []byte)
	Binary()
	TooLarge()
	Drained()
	Closed(err error)
}

var _ events = (*duplex.Conn)(nil)
