package websocket

import (
	"bytes"
	"encoding/binary"
	"slices"
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

// refFrame is one frame header found by refFrames.
type refFrame struct {
	start, end int // the header's bytes in the stream
	opcode     byte
	fin        bool
	length     uint64
}

// refFrames parses a whole client byte stream into frame headers at once,
// as RFC 6455 section 5.2 lays them out, stopping at the first header the
// stream does not hold in full.
func refFrames(stream []byte) []refFrame {
	var out []refFrame
	for i := 0; ; {
		if len(stream)-i < 2 {
			return out
		}
		f := refFrame{start: i, opcode: stream[i] & 0x0f, fin: stream[i]&0x80 != 0}
		size := 2
		if stream[i+1]&0x80 != 0 {
			size += 4 // masking key
		}
		lenField := stream[i+1] & 0x7f
		switch lenField {
		case 126:
			size += 2
		case 127:
			size += 8
		}
		if len(stream)-i < size {
			return out
		}
		switch lenField {
		case 126:
			f.length = uint64(binary.BigEndian.Uint16(stream[i+2:]))
		case 127:
			f.length = binary.BigEndian.Uint64(stream[i+2:])
		default:
			f.length = uint64(lenField)
		}
		f.end = i + size
		out = append(out, f)
		if f.length > uint64(len(stream)-f.end) {
			return out
		}
		i = f.end + int(f.length)
	}
}

// refVerdict decides, from the whole stream, which frame header makes the
// first data message go over limit (nil if none does) and where the header
// of each close frame after it ends.
func refVerdict(stream []byte, limit int64) (trip *refFrame, closeEnds []int) {
	var message uint64 // payload of the data message in progress
	for _, f := range refFrames(stream) {
		if trip != nil {
			if f.opcode == 0x8 {
				closeEnds = append(closeEnds, f.end)
			}
			continue
		}
		if f.opcode >= 0x8 {
			continue // control frames are not part of messages
		}
		if f.opcode != 0x0 {
			message = 0 // text, binary or a reserved data opcode starts a message
		}
		if f.length > uint64(limit) || message+f.length > uint64(limit) {
			trip = &f
			continue
		}
		message += f.length
		if f.fin {
			message = 0
		}
	}
	return trip, closeEnds
}

// FuzzFrameGuard feeds hostile client byte streams to the frame guard in
// chunks of every size and checks each verdict against refVerdict, which
// decides from the whole stream at once: chunks pass untouched until the
// one that completes the header taking a message over the limit, which is
// cut exactly before that header (at its start, if the header began in an
// earlier chunk); later chunks are discarded, except those that complete a
// close frame's header.
func FuzzFrameGuard(f *testing.F) {
	f.Add(join(clientFrame(true, 0x1, 10, 'a'), clientFrame(true, 0x1, 200, 'b')), uint16(100), uint8(1))
	f.Add(join(clientFrame(false, 0x1, 60, 'a'), clientFrame(true, 0x9, 2, 'p'), clientFrame(true, 0x0, 60, 'b'), clientFrame(true, 0x8, 2, 3)), uint16(100), uint8(7))
	f.Add(join(clientFrame(true, 0x2, 70000, 0x88), clientFrame(true, 0x8, 0, 0)), uint16(1024), uint8(255))
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}, uint16(1024), uint8(3))
	f.Add([]byte{0x01, 0x05, 'h', 'e', 'l', 'l', 'o', 0x80, 0x7e, 0x00, 0x64}, uint16(100), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16, chunk uint8) {
		trip, closeEnds := refVerdict(stream, int64(limit))
		size := int(chunk)%64 + 1
		g := frameGuard{limit: int64(limit)}
		tripped := false
		for off := 0; off < len(stream); off += size {
			end := min(off+size, len(stream))
			n, v := g.scan(stream[off:end])
			var want guardVerdict
			switch {
			case !tripped && trip != nil && trip.end <= end:
				want = guardTooLarge
			case tripped && slices.ContainsFunc(closeEnds, func(e int) bool { return e > off && e <= end }):
				want = guardPeerClosed
			case tripped:
				want = guardDiscard
			default:
				want = guardPass
			}
			if v != want {
				t.Fatalf("chunk [%d,%d) of %d bytes, limit %d: verdict %v, want %v (offending header %+v, close headers ending at %v)", off, end, len(stream), limit, v, want, trip, closeEnds)
			}
			switch v {
			case guardTooLarge:
				if want := max(trip.start, off) - off; n != want {
					t.Fatalf("chunk [%d,%d): passed %d bytes, want the %d before the offending header at %d", off, end, n, want, trip.start)
				}
				tripped = true
			case guardPass:
				if n != end-off {
					t.Fatalf("chunk [%d,%d): passed %d bytes of %d", off, end, n, end-off)
				}
			}
		}
	})
}
