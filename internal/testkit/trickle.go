package testkit

import (
	"io"
	"time"
)

// Trickle writes b to w one byte every interval, as a slow-loris client
// sends a request body, until b is spent, a write fails or stop is called;
// stop returns once the writing goroutine has ended.
func Trickle(w io.Writer, b []byte, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		// The interval between bytes is the attack itself, not a wait.
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range b {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if _, err := w.Write(b[i : i+1]); err != nil {
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
