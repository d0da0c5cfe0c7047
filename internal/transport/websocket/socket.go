package websocket

import (
	"context"
	"net/http"
)

// The transport reaches its WebSocket library only through the three small
// interfaces below, and only nbio.go knows which library that is, so another
// implementation (lxzan/gws, for one) can stand in by providing them.

// library upgrades HTTP requests to WebSocket connections and runs whatever
// machinery serves them (for nbio, its pollers).
type library interface {
	// upgrade performs the handshake on w and r. Before the connection can
	// produce any event, ev.attach is called with it; after that ev receives
	// the connection's events until, and including, exactly one ev.closed.
	// On error the library has answered the request (when it still could)
	// and ev receives no event except, possibly, closed after attach.
	upgrade(w http.ResponseWriter, r *http.Request, ev events) error
	start() error
	// shutdown closes every connection and stops the library's goroutines,
	// waiting for their close events to be delivered, or until ctx ends.
	shutdown(ctx context.Context) error
}

// socket is one upgraded connection. Its methods never block on the peer and
// are safe for concurrent use.
type socket interface {
	// writeText queues p as one text message; p may be reused once it
	// returns. An error means the connection is gone or going.
	writeText(p []byte) error
	// blocked reports whether more than the library's high-water mark of
	// written data still waits for the peer to take it. When it reports
	// true, events.drained follows once the backlog falls to the low-water
	// mark, unless the connection closes first.
	blocked() bool
	// closeWith sends a close frame and ends the connection when the peer
	// answers it, or after the close timeout at the latest. Inbound
	// messages are no longer delivered.
	closeWith(code uint16, reason string)
	// abort ends the connection at once, without a close frame.
	abort()
}

// events receives what happens on one connection. The library calls these
// methods from its own goroutines (for nbio, pollers), so they must not
// block; inbound messages of one connection arrive one at a time, in order.
type events interface {
	attach(s socket)
	// text delivers one complete text message; ownership of data passes to
	// the callee.
	text(data []byte)
	// binary reports a binary message, which Herald's JSON protocol never uses.
	binary()
	// tooLarge reports a message over the size limit; the library has
	// stopped delivering messages from this connection.
	tooLarge()
	// drained follows a blocked() that reported true.
	drained()
	// closed reports the end of the connection, once, whatever the cause.
	closed(err error)
}
