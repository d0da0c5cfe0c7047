package websocket

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// clientFrame encodes a masked client frame with a payload of n bytes of fill.
func clientFrame(fin bool, opcode byte, n int, fill byte) []byte {
	var b []byte
	first := opcode
	if fin {
		first |= 0x80
	}
	b = append(b, first)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 1, 2, 3, 4) // mask key; the guard never unmasks
	return append(b, bytes.Repeat([]byte{fill}, n)...)
}

func join(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestFrameGuardPassesFramesWithinLimit(t *testing.T) {
	stream := join(
		clientFrame(true, 0x1, 10, 'a'),
		clientFrame(true, 0x1, 1000, 'b'), // 16-bit length
		clientFrame(true, 0x9, 4, 'p'),    // ping
		clientFrame(true, 0x1, 1024, 'c'), // exactly the limit
		clientFrame(false, 0x1, 500, 'd'), // fragmented: 500 + 524 = limit
		clientFrame(true, 0xa, 0, 0),      // pong between fragments does not count
		clientFrame(true, 0x0, 524, 'e'),
	)
	// Any split of the stream into chunks must give the same verdicts: feed
	// it whole, then one byte at a time.
	for _, chunk := range []int{len(stream), 1, 7} {
		g := frameGuard{limit: 1024}
		for off := 0; off < len(stream); off += chunk {
			p := stream[off:min(off+chunk, len(stream))]
			if n, v := g.scan(p); v != guardPass || n != len(p) {
				t.Fatalf("chunk %d at %d: verdict %v, n %d", chunk, off, v, n)
			}
		}
	}
}

func TestFrameGuardTripsOnHeader(t *testing.T) {
	ok := clientFrame(true, 0x1, 100, 'a')
	tests := []struct {
		name  string
		frame []byte
	}{
		{"16-bit length", clientFrame(true, 0x1, 1025, 'x')},
		{"64-bit length", clientFrame(true, 0x2, 70000, 'x')},
		{"fragments over the limit", join(clientFrame(false, 0x1, 600, 'x'), clientFrame(true, 0x0, 600, 'y'))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := frameGuard{limit: 1024}
			n, v := g.scan(join(ok, tt.frame))
			if v != guardTooLarge {
				t.Fatalf("verdict %v, want guardTooLarge", v)
			}
			want := len(ok)
			if tt.name == "fragments over the limit" {
				want += len(clientFrame(false, 0x1, 600, 'x'))
			}
			if n != want {
				t.Fatalf("passed %d bytes, want the %d before the offending frame", n, want)
			}
		})
	}
}

func TestFrameGuardTripsBeforePayloadArrives(t *testing.T) {
	g := frameGuard{limit: 1024}
	huge := clientFrame(true, 0x1, 1<<20, 'x')
	// The header alone is enough to decide.
	if _, v := g.scan(huge[:14]); v != guardTooLarge {
		t.Fatalf("verdict %v on the header of a 1 MiB frame", v)
	}
}

func TestFrameGuardFindsPeerCloseAfterTripping(t *testing.T) {
	g := frameGuard{limit: 1024}
	// The oversized payload is full of bytes that look like close headers;
	// the guard must skip them by length and find the real close frame.
	big := clientFrame(true, 0x1, 5000, 0x88)
	closeFrame := clientFrame(true, 0x8, 2, 0x03)
	stream := join(big, clientFrame(true, 0x1, 10, 'z'), closeFrame)

	n, v := g.scan(stream[:100])
	if v != guardTooLarge || n != 0 {
		t.Fatalf("first chunk: verdict %v, n %d", v, n)
	}
	closeAt := len(stream) - len(closeFrame)
	for off := 100; off < closeAt; off += 64 {
		if _, v := g.scan(stream[off:min(off+64, closeAt)]); v != guardDiscard {
			t.Fatalf("verdict %v while discarding at %d", v, off)
		}
	}
	if _, v := g.scan(stream[closeAt:]); v != guardPeerClosed {
		t.Fatalf("verdict %v on the close frame", v)
	}
}

func TestFrameGuardSixtyFourBitOverflow(t *testing.T) {
	g := frameGuard{limit: 1024}
	h := []byte{0x81, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, 1<<63+5) // not a valid length, but must not wrap around
	h = append(h, 1, 2, 3, 4)
	if _, v := g.scan(h); v != guardTooLarge {
		t.Fatalf("verdict %v", v)
	}
}
