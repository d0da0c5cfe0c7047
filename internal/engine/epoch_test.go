package engine

import (
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestNewEpoch(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		e := NewEpoch()
		if !protocol.ValidEpoch(e) || len(e) != 8 {
			t.Fatalf("invalid epoch %q", e)
		}
		if seen[e] {
			t.Fatalf("epoch %q repeated within 1000 draws", e)
		}
		seen[e] = true
	}
}
