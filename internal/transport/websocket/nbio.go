package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/transport/duplex"
	"github.com/heraldrt/herald/internal/transport/eventloop"
)

// This file is the only one that knows the library is lesismal/nbio.
//
// How nbio is used: the engine has no listener of its own. net/http accepts
// the connection and runs ServeHTTP; the upgrade hijacks the *net.TCPConn,
// and nbio duplicates its file descriptor into an *nbio.Conn served by the
// engine's epoll pollers, so an idle connection costs no goroutine and no
// read buffer. A hijacked connection nbio cannot poll (TLS terminated by
// net/http, a unix socket) is served in nbio's blocking mode instead: one
// reading goroutine with a small buffer per connection.
//
// nbio runs message and close callbacks through an executor. Ours calls them
// inline on the poller, because the callbacks only hand work to the
// transport's own bounded pools and never block.

// Write backlog bounds, counted in payload bytes handed to nbio and not yet
// taken by the kernel. Above writeHighWater the transport stops draining the
// session, so further backlog stays in the session's bounded queue, whose
// overflow is the slow-consumer disconnect; it resumes at writeLowWater.
const (
	writeHighWater = 256 << 10
	writeLowWater  = 64 << 10
	// writeHardLimit is nbio's own cap, a safety net should the accounting
	// above ever be wrong: beyond it nbio drops the connection at once. It
	// must exceed the largest single frame the node queues (a history reply
	// can reach MaxHistoryLimit × MaxPublicationSize, 64 MiB by default).
	writeHardLimit = 128 << 20
	// blockingReadBuffer is the read buffer of a connection in blocking mode.
	blockingReadBuffer = 4 << 10
)

type nbioConfig struct {
	maxMessage   int
	maxFrame     int // largest frame nbio writes; longer messages are fragmented
	closeTimeout time.Duration
	checkOrigin  func(*http.Request) bool
}

// nbioLibrary implements library with nbio.
type nbioLibrary struct {
	cfg      nbioConfig
	engine   *nbhttp.Engine
	upgrader *nbws.Upgrader
	started  atomic.Bool
	// upgrading is held shared by upgrades and exclusively by shutdown while
	// it clears started: nbio must not take a connection while it stops.
	upgrading sync.RWMutex
	// fence keeps a closed connection's events from reaching a new one,
	// and proves at start that the pollers loop (see eventloop.Fence).
	fence *eventloop.Fence

	// pending holds upgrades between the hijack and nbio's open callback,
	// keyed by the connection's addresses: the open callback gets only the
	// *nbio.Conn, and must attach the socket before the handshake response
	// lets the client send.
	mu      sync.Mutex
	pending map[connKey]*nbioSocket
}

type connKey struct{ local, remote string }

var _ library = (*nbioLibrary)(nil)

func newNBIO(cfg nbioConfig) *nbioLibrary {
	l := &nbioLibrary{cfg: cfg, pending: make(map[connKey]*nbioSocket)}
	l.engine = nbhttp.NewEngine(nbhttp.Config{
		Name:                         "herald-ws",
		ServerExecutor:               func(f func()) { f() },
		SupportServerOnly:            true,
		MaxWebsocketFramePayloadSize: cfg.maxFrame,
		MaxWriteBufferSize:           writeHardLimit,
	})
	l.engine.OnOpen(l.onOpen)
	l.engine.OnWrittenSize(l.onWritten)
	l.fence = eventloop.NewFence()
	l.engine.OnClose(func(c net.Conn, _ error) { l.fence.Closed(c) })

	u := nbws.NewUpgrader()
	u.Engine = l.engine
	// Liveness is the session's ping/pong; a read deadline would only add a
	// timer reset per message.
	u.KeepaliveTime = 0
	// The frameGuard enforces the limit first, with Herald's close code;
	// this is nbio's own check behind it.
	u.MessageLengthLimit = cfg.maxMessage
	u.CheckOrigin = cfg.checkOrigin
	if u.CheckOrigin == nil {
		u.CheckOrigin = func(*http.Request) bool { return true }
	}
	u.BlockingModAsyncWrite = true
	u.BlockingModReadBufferSize = blockingReadBuffer
	// onMessage copies what it keeps, so nbio may reuse a message's buffer
	// as soon as the handler returns: its buffers come from a pool in 1 KiB
	// steps, and one kept per command would make every small pong a
	// kilobyte of garbage.
	u.ReleasePayload = true
	u.OnMessage(l.onMessage)
	u.OnClose(l.onClose)
	u.SetCloseHandler(l.onPeerClose)
	l.upgrader = u
	return l
}

func (l *nbioLibrary) start() error {
	if err := l.engine.Start(); err != nil {
		return err
	}
	// Until every poller loops, a shutdown would be lost and hang.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.fence.Start(ctx, l.engine.Engine, l.engine.NPoller); err != nil {
		return err
	}
	l.started.Store(true)
	return nil
}

func (l *nbioLibrary) shutdown(ctx context.Context) error {
	l.upgrading.Lock()
	stopping := l.started.CompareAndSwap(true, false)
	l.upgrading.Unlock()
	if !stopping {
		return nil // never started, or already stopped: nbio's Stop is not idempotent
	}
	// Stop closes every polled connection, waits for their close callbacks
	// and stops the pollers; it has no deadline of its own.
	done := make(chan struct{})
	go func() {
		l.engine.Stop()
		l.fence.Stop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *nbioLibrary) upgrade(w http.ResponseWriter, r *http.Request, ev events) error {
	s := &nbioSocket{lib: l, ev: ev, guard: frameGuard{limit: int64(l.cfg.maxMessage)}}
	hj := &hijacker{ResponseWriter: w, lib: l, sock: s}
	// true: move a *net.TCPConn to the pollers; false: do not start a reading
	// goroutine for a blocking-mode connection before it is attached.
	var wsc *nbws.Conn
	l.upgrading.RLock()
	defer l.upgrading.RUnlock()
	if !l.started.Load() {
		http.Error(w, "server stopped", http.StatusServiceUnavailable)
		return errors.New("websocket: server stopped")
	}
	err := l.fence.Admit(r.Context(), func() error {
		var err error
		wsc, err = l.upgrader.Upgrade(hj, r, nil, true, false)
		return err
	})
	if hj.keyed {
		l.mu.Lock()
		if l.pending[hj.key] == s {
			delete(l.pending, hj.key)
		}
		l.mu.Unlock()
	}
	if err != nil {
		if s.raw != nil {
			_ = s.raw.Close()
		}
		return err
	}
	if s.nbc != nil {
		return nil // attached by onOpen
	}
	if s.raw == nil {
		_ = wsc.Close()
		return errors.New("websocket: upgraded connection is neither polled nor guarded")
	}
	s.wsc = wsc
	wsc.SetSession(s)
	ev.Attach(s)
	go wsc.HandleRead(blockingReadBuffer)
	return nil
}

// onOpen runs inside the upgrade, after nbio has registered the duplicated
// connection with a poller and before it writes the handshake response.
func (l *nbioLibrary) onOpen(c net.Conn) {
	nbc, ok := c.(*nbio.Conn)
	if !ok {
		return
	}
	key := connKey{local: nbc.LocalAddr().String(), remote: nbc.RemoteAddr().String()}
	l.mu.Lock()
	s := l.pending[key]
	delete(l.pending, key)
	l.mu.Unlock()
	wsc, _ := nbc.Session().(*nbws.Conn)
	if s == nil || wsc == nil {
		// Every connection of this engine comes from upgrade, so this is a
		// bug; refuse rather than serve a connection nobody owns.
		_ = nbc.Close()
		return
	}
	s.nbc, s.wsc = nbc, wsc
	s.parse = nbc.DataHandler()
	wsc.SetSession(s)
	nbc.OnData(s.onData)
	s.ev.Attach(s)
}

// onWritten is nbio's report of bytes taken by the kernel, for any
// connection; it runs with the connection's lock held.
func (l *nbioLibrary) onWritten(c *nbio.Conn, _ []byte, n int) {
	if wsc, ok := c.Session().(*nbws.Conn); ok {
		if s, ok := wsc.Session().(*nbioSocket); ok {
			s.written(n)
		}
	}
}

func (l *nbioLibrary) onMessage(wsc *nbws.Conn, mt nbws.MessageType, data []byte) {
	s, ok := wsc.Session().(*nbioSocket)
	if !ok || s.closing.Load() {
		return
	}
	switch mt {
	case nbws.TextMessage:
		s.ev.Text(bytes.Clone(data))
	case nbws.BinaryMessage:
		s.ev.Binary()
	}
}

func (l *nbioLibrary) onClose(wsc *nbws.Conn, err error) {
	if s, ok := wsc.Session().(*nbioSocket); ok {
		s.finish(err)
	}
}

// onPeerClose answers a close frame from the peer, unless it is the answer
// to ours. nbio closes the connection right after.
func (l *nbioLibrary) onPeerClose(wsc *nbws.Conn, code int, _ string) {
	if s, ok := wsc.Session().(*nbioSocket); ok && !s.closing.CompareAndSwap(false, true) {
		return
	}
	if code == 1005 { // no status received: answer with none
		_ = wsc.WriteMessage(nbws.CloseMessage, nil)
		return
	}
	_ = wsc.WriteClose(code, "")
}

// nbioSocket implements duplex.Socket for one nbio connection.
type nbioSocket struct {
	lib *nbioLibrary
	ev  events

	// Set once before the first event, read-only after.
	nbc   *nbio.Conn               // polled mode
	raw   *guardedConn             // blocking mode
	wsc   *nbws.Conn               // both modes
	parse func(*nbio.Conn, []byte) // nbio's own data handler, behind the guard

	// guard is used only by the reading side (poller or reading goroutine),
	// one chunk at a time.
	guard frameGuard

	backlog eventloop.Backlog // payload bytes written and not yet taken by the kernel
	closing atomic.Bool       // a close frame was sent or received
	done    atomic.Bool       // closed was reported

	mu         sync.Mutex
	closeTimer *time.Timer
}

var _ duplex.Socket = (*nbioSocket)(nil)

func (s *nbioSocket) onData(c *nbio.Conn, data []byte) {
	n, v := s.guard.scan(data)
	switch v {
	case guardPass:
		s.parse(c, data)
	case guardTooLarge:
		if n > 0 {
			s.parse(c, data[:n])
		}
		s.ev.TooLarge()
	case guardPeerClosed:
		s.abortInLoop()
	}
}

func (s *nbioSocket) WriteText(p []byte) error {
	s.backlog.Add(len(p))
	if err := s.outside(false, func() error { return s.wsc.WriteMessage(nbws.TextMessage, p) }); err != nil {
		s.written(len(p))
		return err
	}
	return nil
}

// written takes off n bytes taken by the kernel, frame headers and frames
// nbio writes by itself (pongs, close answers) included.
func (s *nbioSocket) written(n int) {
	if s.backlog.Sent(n) {
		s.ev.Drained()
	}
}

func (s *nbioSocket) Blocked() bool { return s.backlog.Blocked(writeHighWater, writeLowWater) }

func (s *nbioSocket) CloseWith(d protocol.Disconnect) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	_ = s.outside(false, func() error { return s.wsc.WriteClose(int(d.Code), closeReason(d.Reason)) })
	s.mu.Lock()
	if !s.done.Load() {
		s.closeTimer = time.AfterFunc(s.lib.cfg.closeTimeout, s.Abort)
	}
	s.mu.Unlock()
}

func (s *nbioSocket) Abort() {
	if s.nbc != nil {
		_ = s.lib.fence.Outside(true, s.nbc.Close)
		return
	}
	_ = s.raw.Conn.Close()
}

// abortInLoop is abort from the poller, while it handles this connection's
// own event: the fence is not needed there, and would wait on Admit.
func (s *nbioSocket) abortInLoop() { _ = s.nbc.Close() }

// outside runs a write from outside the pollers behind the fence; a
// blocking-mode connection is not polled and needs none.
func (s *nbioSocket) outside(closes bool, op func() error) error {
	if s.nbc == nil {
		return op()
	}
	return s.lib.fence.Outside(closes, op)
}

// finish reports the end of the connection once.
func (s *nbioSocket) finish(err error) {
	if !s.done.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	if s.closeTimer != nil {
		s.closeTimer.Stop()
	}
	s.mu.Unlock()
	s.ev.Closed(err)
}

// hijacker hands nbio the hijacked connection: a *net.TCPConn unchanged, so
// nbio moves it to its pollers (and registered for onOpen), anything else
// wrapped in a guardedConn, which nbio then serves in blocking mode.
type hijacker struct {
	http.ResponseWriter
	lib   *nbioLibrary
	sock  *nbioSocket
	key   connKey
	keyed bool
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent frames before the handshake completed; nbio would
		// never see those bytes, and the stream would start mid-frame.
		_ = conn.Close()
		return nil, nil, errors.New("websocket: client sent data before the handshake completed")
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		h.key = connKey{local: tcp.LocalAddr().String(), remote: tcp.RemoteAddr().String()}
		h.keyed = true
		h.lib.mu.Lock()
		h.lib.pending[h.key] = h.sock
		h.lib.mu.Unlock()
		return conn, brw, nil
	}
	// net/http may have left its read or write deadline on the connection.
	_ = conn.SetDeadline(time.Time{})
	g := &guardedConn{Conn: conn, s: h.sock}
	h.sock.raw = g
	return g, brw, nil
}

// guardedConn is a blocking-mode connection: reads pass the frameGuard and
// writes feed the backlog count, as the poller callbacks do in polled mode.
type guardedConn struct {
	net.Conn
	s    *nbioSocket
	rerr error // read error held back while returning data read with it
}

func (g *guardedConn) Read(p []byte) (int, error) {
	for {
		if g.rerr != nil {
			return 0, g.rerr
		}
		n, err := g.Conn.Read(p)
		g.rerr = err
		if n == 0 {
			continue
		}
		k, v := g.s.guard.scan(p[:n])
		switch v {
		case guardPass:
			return n, nil
		case guardTooLarge:
			g.s.ev.TooLarge()
			if k > 0 {
				return k, nil
			}
		case guardPeerClosed:
			g.rerr = io.EOF
		}
	}
}

func (g *guardedConn) Write(b []byte) (int, error) {
	n, err := g.Conn.Write(b)
	if n > 0 {
		g.s.written(n)
	}
	return n, err
}

// maxCloseReason is what fits a close frame: 125 bytes of payload, two of
// them the code.
const maxCloseReason = 123

// closeReason truncates reason to fit a close frame, on a UTF-8 boundary.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
