package bench

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 64, 1000} {
		p := appendPayload(nil, 42, 1763856000123456789, true, size)
		if size > 40 && len(p) != size {
			t.Errorf("size %d: payload is %d bytes", size, len(p))
		}
		var v map[string]any
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("payload %s is not JSON: %v", p, err)
		}
		// As the server delivers it, on each transport.
		frames := []string{
			fmt.Sprintf(`{"type":"publication","channel":"bench:x-1","offset":7,"data":%s,"time":1}`, p),
			fmt.Sprintf(`{"publications":[{"channel":"bench:x-1","offset":7,"data":%s,"time":1},{"channel":"bench:x-1","offset":8,"data":%s,"time":1}],"next":"a-8","recovered":true}`,
				p, appendPayload(nil, 43, 5, false, size)),
		}
		for _, f := range frames {
			s, rest, ok := nextPayload([]byte(f))
			if !ok || s != (sample{seq: 42, sentNS: 1763856000123456789, measured: true}) {
				t.Errorf("first payload of %s: %+v %v", f, s, ok)
			}
			s, _, ok = nextPayload(rest)
			if ok && s != (sample{seq: 43, sentNS: 5}) {
				t.Errorf("second payload of %s: %+v", f, s)
			}
		}
	}
	for _, bad := range []string{`{"data":{"s":x}`, `{"data":{"s":1,"t":}`, `{"data":{"s":1,"t":2,"m":`, `{"type":"ping"}`} {
		if _, _, ok := nextPayload([]byte(bad)); ok {
			t.Errorf("%s parsed as a payload", bad)
		}
	}
}

func TestSeqTracker(t *testing.T) {
	var tr seqTracker
	steps := []struct {
		seq  uint64
		want verdict
	}{
		{1, inOrder}, {2, inOrder}, {2, duplicate}, {5, inOrder}, {4, late}, {3, late}, {4, duplicate},
		{100, inOrder}, {30, tooOld}, {99, late}, {99, duplicate}, {1000, inOrder},
	}
	for _, s := range steps {
		if got := tr.observe(s.seq, true); got != s.want {
			t.Errorf("seq %d: verdict %d, want %d", s.seq, got, s.want)
		}
	}
	// Measured counts distinct arrivals, tooOld included (it may be new).
	if got := tr.measured.Load(); got != 9 {
		t.Errorf("measured %d, want 9", got)
	}
}
