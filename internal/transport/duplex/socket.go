package duplex

import "github.com/heraldrt/herald/internal/protocol"

// Socket is one message-oriented connection as its library provides it
// (a WebSocket, a WebRTC data channel). Its methods never block on the peer
// and are safe for concurrent use.
type Socket interface {
	// WriteText queues p as one text message; p may be reused once it
	// returns. An error means the connection is gone or going.
	WriteText(p []byte) error
	// Blocked reports whether more than the library's high-water mark of
	// written data still waits for the peer to take it. When it reports
	// true, Conn.Drained follows once the backlog falls to the low-water
	// mark, unless the connection closes first.
	Blocked() bool
	// CloseWith tells the peer why the connection ends, in the way its
	// protocol has (a WebSocket close frame, a disconnect push), and ends
	// the connection once the peer has it, or after a timeout at the latest.
	// Inbound messages are no longer delivered.
	CloseWith(d protocol.Disconnect)
	// Abort ends the connection at once, without telling the peer.
	Abort()
}

// LatestSocket is a Socket that may also have an unreliable, unordered
// path, meant for the publications of protocol.DeliveryLatest
// subscriptions (a WebRTC data channel without retransmissions).
type LatestSocket interface {
	Socket
	// HasLatestPath reports whether the unreliable path is open now.
	HasLatestPath() bool
	// WriteLatest sends p alone on the unreliable path, where it may be
	// lost; p may be reused once it returns.
	WriteLatest(p []byte) error
}
