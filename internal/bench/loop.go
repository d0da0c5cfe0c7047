package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/lesismal/nbio/nbhttp"
)

// loop is the event loop every subscriber connection of one process is read
// by: an nbhttp engine in client mode, whose epoll pollers (one per CPU) read
// all sockets into one shared buffer per poller and run our callbacks inline.
// An idle connection costs no goroutine and no read buffer in the generator,
// which is what lets one process hold 15,000 of them without becoming the
// bottleneck it measures.
type loop struct {
	engine *nbhttp.Engine
	dialer *sourceDialer
}

func newLoop(server string, sources int, dialTimeout time.Duration) (*loop, error) {
	addr, err := serverAddr(server)
	if err != nil {
		return nil, err
	}
	inline := func(f func()) { f() }
	e := nbhttp.NewEngine(nbhttp.Config{
		Name:           "herald-bench",
		NPoller:        runtime.GOMAXPROCS(0),
		ServerExecutor: inline, // connection callbacks run on the poller
		ClientExecutor: inline,
		// Payload buffers go back to nbio's pool after each callback: the
		// callbacks copy nothing they keep.
		ReleaseWebsocketPayload: true,
	})
	if err := e.Start(); err != nil {
		return nil, fmt.Errorf("bench: start event loop: %w", err)
	}
	return &loop{engine: e, dialer: newSourceDialer(addr, sources, dialTimeout)}, nil
}

func (l *loop) stop() { l.engine.Stop() }

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (absent from package
// syscall): bind picks the source address only, and the port is chosen at
// connect, per destination, so each source address offers the whole
// ephemeral range.
const ipBindAddressNoPort = 24

// sourceDialer dials the server from loopback source addresses 127.0.0.1,
// 127.0.0.2, ... 127.0.0.<sources>: one source address allows one
// connection per ephemeral port (about 28,000 here) to a given server
// address, so N connections beyond that need several.
type sourceDialer struct {
	addr    string
	sources int
	timeout time.Duration
}

func newSourceDialer(addr string, sources int, timeout time.Duration) *sourceDialer {
	return &sourceDialer{addr: addr, sources: max(sources, 1), timeout: timeout}
}

// source is the source address of connection i.
func (d *sourceDialer) source(i int) net.IP {
	v := i%d.sources + 1
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v))
}

// dial opens connection i, a blocking call bounded by the dial timeout.
func (d *sourceDialer) dial(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{
		Timeout:   d.timeout,
		LocalAddr: &net.TCPAddr{IP: d.source(i)},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			}); err != nil {
				return err
			}
			return serr
		},
	}
	return nd.DialContext(ctx, "tcp4", d.addr)
}

// dialFunc adapts dial to nbhttp.ClientConn.Dial for connection i.
func (d *sourceDialer) dialFunc(ctx context.Context, i int) func(string, string) (net.Conn, error) {
	return func(string, string) (net.Conn, error) { return d.dial(ctx, i) }
}
