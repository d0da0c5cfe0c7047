package webhook

import (
	"testing"
	"time"
)

func TestBackoffGrowsWithinCap(t *testing.T) {
	lo, hi := 10*time.Millisecond, time.Second
	for n := 1; n < 100; n++ {
		ceiling := min(hi, lo<<min(n-1, 20))
		for range 20 {
			if d := backoff(lo, hi, n); d <= 0 || d > ceiling {
				t.Fatalf("attempt %d waited %v, ceiling %v", n, d, ceiling)
			}
		}
	}
}
