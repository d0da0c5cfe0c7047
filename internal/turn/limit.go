package turn

import (
	"context"
	"net"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

// userLimits holds one token bucket of bytes per user with allocations
// open, shared by all of that user's allocations.
type userLimits struct {
	bytesPerSecond int
	mu             sync.Mutex
	byUser         map[string]*userLimit
}

type userLimit struct {
	limiter *rate.Limiter
	conns   int
}

func newUserLimits(bytesPerSecond int) *userLimits {
	return &userLimits{bytesPerSecond: bytesPerSecond, byUser: map[string]*userLimit{}}
}

// acquire returns user's bucket, made on first use; release forgets it
// when the user's last allocation closes, so the map stays as small as the
// set of users relaying.
func (u *userLimits) acquire(user string) *rate.Limiter {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.byUser[user]
	if l == nil {
		// A second's worth of burst, and never less than one large packet.
		l = &userLimit{limiter: rate.NewLimiter(rate.Limit(u.bytesPerSecond), max(u.bytesPerSecond, 2048))}
		u.byUser[user] = l
	}
	l.conns++
	return l.limiter
}

func (u *userLimits) release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if l := u.byUser[user]; l != nil {
		if l.conns--; l.conns <= 0 {
			delete(u.byUser, user)
		}
	}
}

// limitedRelay makes relay sockets whose traffic counts against their
// user's bucket: UDP sockets, and the TCP connections of RFC 6062
// allocations, accepted from peers or dialled to them. It also gives a
// user's reserved allocation slot back when the relay cannot be made.
type limitedRelay struct {
	*pionturn.RelayAddressGeneratorStatic
	limits *userLimits // nil: no limit
	quota  *allocations
}

func (r *limitedRelay) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := r.RelayAddressGeneratorStatic.AllocatePacketConn(conf)
	if err != nil {
		r.quota.failed(conf.UserID)
		return conn, addr, err
	}
	if r.limits == nil {
		return conn, addr, nil
	}
	user := conf.UserID
	return &limitedConn{PacketConn: conn, limiter: r.limits.acquire(user), release: func() { r.limits.release(user) }}, addr, nil
}

func (r *limitedRelay) AllocateListener(conf pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	ln, addr, err := r.RelayAddressGeneratorStatic.AllocateListener(conf)
	if err != nil {
		r.quota.failed(conf.UserID)
		return ln, addr, err
	}
	if r.limits == nil {
		return ln, addr, nil
	}
	return &limitedListener{Listener: ln, limits: r.limits, user: conf.UserID}, addr, nil
}

func (r *limitedRelay) AllocateConn(conf pionturn.AllocateConnConfig) (net.Conn, error) {
	conn, err := r.RelayAddressGeneratorStatic.AllocateConn(conf)
	if err != nil || r.limits == nil {
		return conn, err
	}
	return newLimitedStream(conn, r.limits, conf.UserID), nil
}

// limitedListener accepts peers' connections to a TCP allocation, each
// paced by its user's bucket.
type limitedListener struct {
	net.Listener
	limits *userLimits
	user   string
}

func (l *limitedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return conn, err
	}
	return newLimitedStream(conn, l.limits, l.user), nil
}

// limitedStream paces a relayed TCP connection to its user's bucket. A
// stream cannot lose bytes as datagrams may, so it waits for the budget
// instead, and TCP's flow control slows the sender down.
type limitedStream struct {
	net.Conn
	limiter *rate.Limiter
	// ctx ends on Close, so that no read or write stays waiting for a
	// budget on a closed connection.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	limits *userLimits
	user   string
}

func newLimitedStream(conn net.Conn, limits *userLimits, user string) *limitedStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &limitedStream{Conn: conn, limiter: limits.acquire(user), ctx: ctx, cancel: cancel, limits: limits, user: user}
}

func (c *limitedStream) Read(p []byte) (int, error) {
	// No more than one bucket at a time, or the wait could never be met.
	p = p[:min(len(p), c.limiter.Burst())]
	n, err := c.Conn.Read(p)
	if n > 0 {
		if werr := c.limiter.WaitN(c.ctx, n); werr != nil && err == nil {
			err = net.ErrClosed
		}
	}
	return n, err
}

func (c *limitedStream) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), c.limiter.Burst())]
		if err := c.limiter.WaitN(c.ctx, len(chunk)); err != nil {
			return written, net.ErrClosed
		}
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (c *limitedStream) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.limits.release(c.user)
	})
	return c.Conn.Close()
}

// limitedConn drops packets over the budget instead of waiting: a relay
// that blocked would stall the allocation's other traffic, and UDP
// applications expect loss under congestion anyway.
type limitedConn struct {
	net.PacketConn
	limiter *rate.Limiter
	once    sync.Once
	release func()
}

func (c *limitedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.limiter.AllowN(time.Now(), len(p)) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *limitedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.limiter.AllowN(time.Now(), n) {
			return n, addr, err
		}
	}
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.PacketConn.Close()
}
