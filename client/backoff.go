package client

import (
	"math/rand/v2"
	"time"
)

// Backoff defaults, used when Config leaves them zero.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 20 * time.Second
)

// stableAfter is how long a connection must last for the next reconnect to
// start again from the shortest delay. Resetting on every successful
// connect would let a server that accepts and then drops clients at once
// draw a storm of reconnects.
const stableAfter = 10 * time.Second

// backoff computes reconnect delays with "full jitter": the n-th delay is
// uniform in [0, min(max, base·2ⁿ)]. Spreading delays over the whole range,
// rather than around a mean, is what keeps thousands of clients that lost the
// same server from coming back in waves.
type backoff struct {
	base, max time.Duration
	attempt   int
	// randN returns a uniform value in [0, n); tests replace it.
	randN func(n int64) int64
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, randN: rand.Int64N}
}

// ceiling is the upper bound of the next delay.
func (b *backoff) ceiling() time.Duration {
	d := b.base
	for i := 0; i < b.attempt && d < b.max; i++ {
		if d > b.max/2 {
			return b.max // doubling would pass max, or overflow
		}
		d *= 2
	}
	return min(d, b.max)
}

// next returns the delay before the next attempt and counts the attempt.
func (b *backoff) next() time.Duration {
	c := b.ceiling()
	b.attempt++
	if c <= 0 {
		return 0
	}
	return time.Duration(b.randN(int64(c) + 1))
}

// reset makes the next delay the shortest again.
func (b *backoff) reset() { b.attempt = 0 }
