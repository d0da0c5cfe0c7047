package websocket

import "encoding/binary"

// frameGuard watches the raw inbound byte stream of one connection and finds
// data messages larger than a limit from their frame headers, before their
// payload is buffered. WebSocket libraries enforce such a limit themselves,
// but answer with their own close code (1009); Herald's clients are promised
// DisconnectMessageTooLarge instead, and this is what lets the transport
// send it.
//
// The guard only reads headers and skips payloads, so it costs a few
// comparisons per frame and holds no buffer. It must see every byte after
// the HTTP handshake, in order.
type frameGuard struct {
	limit int64

	hdr  [14]byte // the longest header: 2 + 8 (length) + 4 (mask key)
	hlen int      // header bytes collected so far
	need int      // full header length once hdr[1] is known, else 0
	// remain counts payload bytes of the current frame still to skip.
	remain uint64
	// msg counts payload bytes of the data message in progress.
	msg int64
	// tripped is set once a message went over the limit: from then on the
	// guard only looks for the peer's close frame.
	tripped bool
}

// guardVerdict tells the caller what to do with a chunk after scanning it.
type guardVerdict uint8

const (
	// guardPass: hand the whole chunk to the WebSocket parser.
	guardPass guardVerdict = iota
	// guardTooLarge: a message went over the limit. Hand only the first n
	// bytes to the parser, discard the rest and close with
	// DisconnectMessageTooLarge. Reported once.
	guardTooLarge
	// guardDiscard: the guard has tripped before; discard the chunk.
	guardDiscard
	// guardPeerClosed: the guard has tripped and the chunk holds the peer's
	// close frame, its answer to ours: the connection can be dropped.
	guardPeerClosed
)

const (
	opContinuation = 0x0
	opClose        = 0x8
)

// scan advances over p. With guardTooLarge, n is the length of the prefix of
// p that holds the frames before the offending one.
func (g *frameGuard) scan(p []byte) (n int, v guardVerdict) {
	wasTripped := g.tripped
	tooLargeAt := -1
	peerClosed := false
	start := 0 // where the header being collected began within p
	for i := 0; i < len(p); {
		if g.remain > 0 {
			skip := uint64(len(p) - i)
			if skip > g.remain {
				skip = g.remain
			}
			g.remain -= skip
			i += int(skip)
			continue
		}
		if g.hlen == 0 {
			start = i
		}
		g.hdr[g.hlen] = p[i]
		g.hlen++
		i++
		if g.hlen == 2 {
			g.need = 2
			switch g.hdr[1] & 0x7f {
			case 126:
				g.need += 2
			case 127:
				g.need += 8
			}
			if g.hdr[1]&0x80 != 0 {
				g.need += 4
			}
		}
		if g.hlen < 2 || g.hlen < g.need {
			continue
		}
		opcode := g.hdr[0] & 0x0f
		fin := g.hdr[0]&0x80 != 0
		var length uint64
		switch l := g.hdr[1] & 0x7f; l {
		case 126:
			length = uint64(binary.BigEndian.Uint16(g.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(g.hdr[2:10])
		default:
			length = uint64(l)
		}
		g.hlen, g.need, g.remain = 0, 0, length
		switch {
		case g.tripped:
			// Keep walking frame boundaries so the peer's close frame is
			// recognised, even in the chunk that tripped the guard.
			if opcode == opClose {
				peerClosed = true
			}
		case opcode <= 0x7: // continuation, text, binary and reserved data opcodes
			if opcode != opContinuation {
				g.msg = 0
			}
			// length > limit also catches lengths that overflow int64.
			if length > uint64(g.limit) || g.msg+int64(length) > g.limit {
				g.tripped = true
				tooLargeAt = start
				continue
			}
			g.msg += int64(length)
			if fin {
				g.msg = 0
			}
		}
	}
	switch {
	case tooLargeAt >= 0:
		return tooLargeAt, guardTooLarge
	case peerClosed:
		return 0, guardPeerClosed
	case wasTripped:
		return 0, guardDiscard
	}
	return len(p), guardPass
}
