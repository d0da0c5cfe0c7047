package webhook

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
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

// A redirect is a failed attempt, not a POST turned into a GET elsewhere.
func TestRedirectIsAFailure(t *testing.T) {
	var gets atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gets.Add(1) }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	w := startWebhooks(t, fastConfig("", Endpoint{URL: redirect.URL, Secret: testSecret}))
	w.Emit(publishEvent("ch", 1))
	testkit.WaitFor(t, 5*time.Second, "failed attempts", func() bool { return w.Stats().FailedAttempts >= 2 })
	if gets.Load() != 0 || w.Stats().Delivered != 0 {
		t.Fatalf("the redirect was followed: %d requests at its target, stats %+v", gets.Load(), w.Stats())
	}
}
