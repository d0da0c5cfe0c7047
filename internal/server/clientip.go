package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientAddr finds the address a request came from. A request whose peer is
// one of the trusted proxies is attributed to the nearest address in its
// X-Forwarded-For that is not a trusted proxy: every hop appends the address
// it received from, so addresses left of an untrusted one may be forged.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A malformed hop cannot be trusted, nor anything left of it.
			return addr
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parsePrefixes reads trusted_proxies entries: CIDR prefixes or single
// addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, &net.ParseError{Type: "address or CIDR prefix", Text: s}
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// addrLimiter bounds how often each client address may open a connection:
// one token bucket per address (per /64 for IPv6, which one host usually
// holds whole). Buckets that have refilled are forgotten, and the map is
// capped: beyond maxAddrBuckets addresses, newcomers share one bucket, so an
// attacker cycling through addresses cannot grow memory without bound.
type addrLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[netip.Addr]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

const (
	maxAddrBuckets = 100_000
	sweepEvery     = 10 * time.Second
)

func newAddrLimiter(perSecond float64, burst int) *addrLimiter {
	return &addrLimiter{
		limit:    rate.Limit(perSecond),
		burst:    burst,
		buckets:  make(map[netip.Addr]*rate.Limiter),
		overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// allow takes a token from addr's bucket, reporting whether there was one.
func (l *addrLimiter) allow(addr netip.Addr, now time.Time) bool {
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxAddrBuckets {
			return l.overflow.AllowN(now, 1)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[addr] = b
	}
	return b.AllowN(now, 1)
}

// sweep forgets full buckets: a new one for the same address would be
// identical. Caller must hold l.mu.
func (l *addrLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for a, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, a)
		}
	}
}
