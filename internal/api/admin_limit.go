package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Admin logins are bounded per client address: loginBurst attempts at
// once, then one every loginEvery. A password thus cannot be guessed at
// more than a few thousand tries a day from one address.
const (
	loginBurst = 5
	loginEvery = 10 * time.Second
)

// maxLoginAddrs bounds the addresses the limiter remembers. When it is
// full, addresses whose buckets refilled are forgotten (they are as if
// new); if that frees too little, arbitrary ones go until a quarter is
// free, so pruning is rare. Forgetting an address gives it back at most
// loginBurst attempts.
const maxLoginAddrs = 4096

// loginLimiter bounds login attempts per address.
type loginLimiter struct {
	mu    sync.Mutex
	addrs map[string]*rate.Limiter
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{addrs: make(map[string]*rate.Limiter)}
}

// allow takes one attempt for addr at now, or says how long until the next
// one is allowed.
func (l *loginLimiter) allow(addr string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.addrs[addr]
	if lim == nil {
		if len(l.addrs) >= maxLoginAddrs {
			l.prune(now)
		}
		lim = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
		l.addrs[addr] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (l *loginLimiter) prune(now time.Time) {
	for addr, lim := range l.addrs {
		if lim.TokensAt(now) >= loginBurst {
			delete(l.addrs, addr)
		}
	}
	for addr := range l.addrs {
		if len(l.addrs) <= maxLoginAddrs*3/4 {
			return
		}
		delete(l.addrs, addr)
	}
}
