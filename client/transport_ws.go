package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/protocol"
)

const (
	// dialTimeout bounds a WebSocket handshake plus the connect command.
	dialTimeout = 15 * time.Second
	// writeTimeout bounds one WebSocket write.
	writeTimeout = 10 * time.Second
	// wsReadLimit bounds one inbound message. The server coalesces queued
	// frames into one message, up to its per-connection queue (1 MiB by
	// default); the limit leaves room for servers configured larger.
	wsReadLimit = 64 << 20
)

// wsTransport runs the bidirectional protocol over a message connection,
// a WebSocket or a WebRTC data channel: one connection carries commands
// with ids, their replies, and pushes.
type wsTransport struct {
	c *Client
	// dial opens a connection; the connect command follows on it.
	dial func(ctx context.Context) (messageConn, error)
	// conn is the current connection once its connect command succeeded,
	// nil otherwise. Guarded by c.mu.
	conn *wsConn
}

var _ transport = (*wsTransport)(nil)

func (t *wsTransport) session(ctx context.Context) error {
	c := t.c
	tok, fresh, err := c.useToken(ctx)
	if err != nil {
		return tokenFailure(err)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	mc, err := t.dial(dctx)
	if err != nil {
		return asEndReason(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	w := &wsConn{t: t, mc: mc, done: make(chan struct{}), pending: make(map[uint32]*pendingCall), ctx: wctx, cancel: wcancel}
	go w.readLoop()

	c.mu.Lock()
	req := protocol.ConnectRequest{Token: tok, Data: c.cfg.Data, Name: c.cfg.Name, Subs: c.serverPositionsLocked()}
	c.mu.Unlock()
	var res protocol.ConnectResult
	err = w.call(dctx, protocol.MethodConnect, req, &res)
	cancel()
	if err != nil {
		w.fail(&endReason{reason: "connect", err: err})
		<-w.done
		var e *Error
		if errors.As(err, &e) {
			return &endReason{reason: "connect refused", err: e, permanent: c.refusedForGood(e, fresh)}
		}
		return w.reason()
	}
	if res.Ping > 0 {
		// The server pings every Ping seconds and waits Pong seconds for
		// the answer: silence for longer means the connection is dead,
		// even if TCP has not noticed.
		w.startKeepAlive(time.Duration(res.Ping+res.Pong) * time.Second)
	}

	c.mu.Lock()
	t.conn = w
	c.connectedLocked(ConnectedEvent{ClientID: res.Client, User: res.User, Data: res.Data})
	var wanted []*Subscription
	for _, sub := range c.subs {
		if sub.wantedLocked() {
			wanted = append(wanted, sub)
		}
	}
	c.mu.Unlock()
	t.subscribeOn(w, wanted)

	select {
	case <-w.done:
	case <-ctx.Done():
		w.fail(&endReason{reason: "client closed"})
		<-w.done
	}
	w.tasks.Wait()
	c.mu.Lock()
	if t.conn == w {
		t.conn = nil
	}
	c.mu.Unlock()
	return w.reason()
}

// refusedForGood reports whether a connect the server refused with e would
// be refused again: bad credentials, or an expired token that no fresh one
// (fresh: it was one) can replace.
func (c *Client) refusedForGood(e *Error, fresh bool) bool {
	switch e.Code {
	case CodeUnauthorized:
		return true
	case CodeTokenExpired:
		return fresh || c.cfg.GetToken == nil
	}
	return false
}

// subscribeOn subscribes subs on w, in one batch, once those with a
// GetToken have a fresh token; a subscription no longer wanted by then is
// left out. A subscription wanted meanwhile is subscribed by its own call.
func (t *wsTransport) subscribeOn(w *wsConn, subs []*Subscription) {
	c := t.c
	if err := c.subTokens(w.ctx, subs); err != nil {
		w.fail(asEndReason(err))
		return
	}
	c.mu.Lock()
	if t.conn != w {
		c.mu.Unlock()
		return
	}
	var cmds []outCommand
	for _, sub := range subs {
		if sub.wantedLocked() {
			cmds = append(cmds, t.subscribeCommandLocked(w, sub))
		}
	}
	c.mu.Unlock()
	w.send(cmds)
}

// subscribeCommandLocked builds the subscribe command of sub on w, resuming
// from the subscription's position when it has one, and marks sub as being
// subscribed on w. Caller holds c.mu.
func (t *wsTransport) subscribeCommandLocked(w *wsConn, sub *Subscription) outCommand {
	c := t.c
	sub.conn = w
	gen := sub.gen.Load()
	req := protocol.SubscribeRequest{Channel: sub.channel, Token: sub.token}
	if sub.cfg.Latest {
		req.Delivery = protocol.DeliveryLatest
	}
	from := sub.wire
	if sub.hasWire {
		req.Recover, req.Epoch, req.Offset = true, from.Epoch, from.Offset
	}
	onReply := func(raw json.RawMessage, e *Error) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sub.gen.Load() != gen || sub.conn != w {
			return nil // unsubscribed meanwhile
		}
		if e != nil {
			if ss := c.server[sub.channel]; e.Code == CodeAlreadySubscribed && ss != nil && ss.conn == w {
				// The server subscribed the connection to this channel
				// itself; its events go to the server-side handlers.
				sub.refuseLocked(gen, e)
				return nil
			}
			if temporary(e.Code) || e.Code == CodeAlreadySubscribed {
				// The server or this connection is in trouble; a fresh
				// connection after a backoff subscribes everything again.
				sub.errorLocked(e)
				return &endReason{reason: "subscribe " + sub.channel, err: e}
			}
			sub.refuseLocked(gen, e)
			return nil
		}
		var r protocol.SubscribeResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return &endReason{reason: "malformed subscribe reply", err: err}
		}
		// The stream continues from the position asked for when it was
		// recovered (the missed publications follow this reply), else from
		// the channel's newest position.
		start := StreamPosition{Epoch: r.Epoch, Offset: r.Offset}
		if r.Recovered {
			start.Offset = from.Offset
		}
		sub.confirmLocked(w, gen, SubscribedEvent{Position: start, Recoverable: r.Recoverable, WasRecovering: r.WasRecovering, Recovered: r.Recovered})
		return nil
	}
	return outCommand{method: protocol.MethodSubscribe, params: req, onReply: onReply}
}

func (t *wsTransport) subscribe(sub *Subscription) {
	c := t.c
	c.mu.Lock()
	w := t.conn
	wanted := w != nil && sub.wantedLocked()
	c.mu.Unlock()
	switch {
	case !wanted:
		// The next session subscribes it.
	case sub.cfg.GetToken == nil:
		t.subscribeOn(w, []*Subscription{sub})
	default:
		// GetToken may take a while, and belongs to the connection rather
		// than to the Subscribe call that got here first.
		w.spawn(func() { t.subscribeOn(w, []*Subscription{sub}) })
	}
}

func (t *wsTransport) unsubscribe(ctx context.Context, sub *Subscription, conn any) error {
	w, _ := conn.(*wsConn)
	t.c.mu.Lock()
	live := w != nil && t.conn == w
	t.c.mu.Unlock()
	if !live {
		return nil // the connection is gone, and the server forgot it
	}
	err := w.call(ctx, protocol.MethodUnsubscribe, protocol.UnsubscribeRequest{Channel: sub.channel}, nil)
	if errors.Is(err, &Error{Code: CodeNotSubscribed}) || errors.Is(err, ErrDisconnected) {
		return nil
	}
	return err
}

func (t *wsTransport) call(ctx context.Context, method string, params, out any) error {
	for {
		if err := t.c.commandState(ctx, true); err != nil {
			return err
		}
		t.c.mu.Lock()
		w, ch := t.conn, t.c.stateCh
		t.c.mu.Unlock()
		if w != nil {
			return w.call(ctx, method, params, out)
		}
		// Connected, but the connection just ended: the state is about to
		// change.
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wsConn is one connection of a wsTransport: a reader goroutine, the
// commands waiting for their replies, and the tasks that fetch tokens for it.
type wsConn struct {
	t    *wsTransport
	mc   messageConn
	done chan struct{} // closed when the reader has exited
	// ctx ends with the connection (cancel is called by fail): the
	// context of its tasks.
	ctx    context.Context
	cancel context.CancelFunc
	// tasks counts the goroutines spawn started; refreshing is set while
	// one refreshes the connection token.
	tasks      sync.WaitGroup
	refreshing atomic.Bool

	mu        sync.Mutex
	nextID    uint32
	pending   map[uint32]*pendingCall
	end       *endReason // why the connection ended; the first reason wins
	keepAlive *time.Timer
	window    time.Duration
}

// pendingCall is a command waiting for its reply.
type pendingCall struct {
	// onReply, if set, runs in the reader when the reply arrives, before
	// any later frame is handled: a subscribe reply must be recorded
	// before the recovered publications that follow it. An error it
	// returns ends the connection.
	onReply func(result json.RawMessage, err *Error) error
	// reply, if set, receives the reply.
	reply chan callReply
}

type callReply struct {
	result json.RawMessage
	err    error
}

// outCommand is a command to send without waiting for its reply.
type outCommand struct {
	method  string
	params  any
	onReply func(json.RawMessage, *Error) error
}

// call sends one command and waits for its reply, decoding the result into
// out (if not nil). A connection lost first gives ErrDisconnected.
func (w *wsConn) call(ctx context.Context, method string, params, out any) error {
	pc := &pendingCall{reply: make(chan callReply, 1)}
	frame, id, err := w.register(method, params, pc)
	if err != nil {
		return err
	}
	if err := w.write(frame); err != nil {
		w.unregister(id)
		return ErrDisconnected
	}
	select {
	case r := <-pc.reply:
		if r.err != nil {
			return r.err
		}
		if out != nil {
			if err := json.Unmarshal(r.result, out); err != nil {
				return errors.Join(errors.New("client: malformed "+method+" reply"), err)
			}
		}
		return nil
	case <-ctx.Done():
		w.unregister(id)
		return ctx.Err()
	}
}

// send writes commands without waiting for replies, batching them into
// messages of up to protocol.MaxCommandsPerFrame frames.
func (w *wsConn) send(cmds []outCommand) {
	var msg []byte
	n := 0
	flush := func() bool {
		if n == 0 {
			return true
		}
		err := w.write(msg)
		msg, n = msg[:0], 0
		return err == nil
	}
	for _, cmd := range cmds {
		frame, _, err := w.register(cmd.method, cmd.params, &pendingCall{onReply: cmd.onReply})
		if err != nil {
			return
		}
		if n > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, frame...)
		if n++; n == protocol.MaxCommandsPerFrame && !flush() {
			return
		}
	}
	flush()
}

// register assigns an id to a command, records pc under it and returns the
// encoded frame.
func (w *wsConn) register(method string, params any, pc *pendingCall) ([]byte, uint32, error) {
	p, err := protocol.Marshal(params)
	if err != nil {
		return nil, 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end != nil {
		return nil, 0, ErrDisconnected
	}
	w.nextID++
	if w.nextID == 0 {
		w.nextID = 1
	}
	id := w.nextID
	frame, err := protocol.Marshal(protocol.Command{ID: id, Method: method, Params: p})
	if err != nil {
		return nil, 0, err
	}
	w.pending[id] = pc
	return frame, id, nil
}

func (w *wsConn) unregister(id uint32) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
}

func (w *wsConn) write(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := w.mc.Write(ctx, msg); err != nil {
		w.fail(&endReason{reason: "write", err: err})
		return err
	}
	return nil
}

// fail ends the connection for reason r, unless it already ended.
func (w *wsConn) fail(r *endReason) {
	w.mu.Lock()
	if w.end == nil {
		w.end = r
	}
	if w.keepAlive != nil {
		w.keepAlive.Stop()
	}
	w.mu.Unlock()
	w.cancel()
	w.mc.Close()
}

// spawn runs fn on a goroutine of its own while the connection lives; the
// session waits for it before it ends. Once the connection ended, fn does
// not run: the session may be waiting already.
func (w *wsConn) spawn(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end != nil {
		return
	}
	w.tasks.Add(1)
	go func() {
		defer w.tasks.Done()
		fn()
	}()
}

// refresh answers the server's request for a fresh connection token before
// the current one expires in expiresIn seconds. Without GetToken there is
// nothing to send: the server closes the connection at expiry (4505), and
// the client stops with ErrTokenExpired.
func (w *wsConn) refresh(expiresIn int) {
	c := w.t.c
	if c.cfg.GetToken == nil || !w.refreshing.CompareAndSwap(false, true) {
		return
	}
	w.spawn(func() {
		defer w.refreshing.Store(false)
		// A token that comes after expiry is of no use on this connection.
		ctx, cancel := context.WithTimeout(w.ctx, time.Duration(expiresIn)*time.Second)
		defer cancel()
		tok, err := c.fetchToken(ctx)
		if err == nil {
			err = w.call(ctx, protocol.MethodRefresh, protocol.RefreshRequest{Token: tok}, nil)
		}
		switch {
		case err == nil, w.ctx.Err() != nil:
		case errors.Is(err, ErrUnauthorized):
			// The application (from GetToken) or the server says this
			// user may not go on.
			w.fail(&endReason{reason: "token refresh", err: err, permanent: true})
		default:
			// The server closes the connection at expiry; the next one
			// brings a fresh token.
			c.mu.Lock()
			c.emitErrorLocked(fmt.Errorf("client: token refresh: %w", err))
			c.mu.Unlock()
		}
	})
}

// reason is why the connection ended.
func (w *wsConn) reason() *endReason {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end == nil {
		return &endReason{reason: "connection ended"}
	}
	return w.end
}

func (w *wsConn) startKeepAlive(window time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end != nil {
		return
	}
	w.window = window
	w.keepAlive = time.AfterFunc(window, func() {
		w.fail(&endReason{reason: "no heartbeat from the server within " + window.String()})
	})
}

// alive pushes the heartbeat deadline back after any inbound message.
func (w *wsConn) alive() {
	w.mu.Lock()
	if w.keepAlive != nil && w.end == nil {
		w.keepAlive.Reset(w.window)
	}
	w.mu.Unlock()
}

// readLoop reads messages until the connection ends, then fails every
// command still waiting for a reply.
func (w *wsConn) readLoop() {
	defer close(w.done)
	defer w.failPending()
	ctx := context.Background()
	for {
		msg, err := w.mc.Read(ctx)
		if err != nil {
			r, ok := err.(*endReason)
			if !ok {
				r = &endReason{reason: "connection lost", err: err}
			}
			w.fail(r)
			return
		}
		w.alive()
		for len(msg) > 0 {
			var line []byte
			line, msg, _ = bytes.Cut(msg, []byte{'\n'})
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if r := w.handle(line); r != nil {
				w.fail(r)
				return
			}
		}
	}
}

func (w *wsConn) failPending() {
	w.mu.Lock()
	pending := w.pending
	w.pending = map[uint32]*pendingCall{}
	w.mu.Unlock()
	for _, pc := range pending {
		if pc.reply != nil {
			pc.reply <- callReply{err: ErrDisconnected}
		}
	}
}

// wireFrame is any frame the server sends: a reply (id set) or a push
// (type set). One struct decodes all, in one pass.
type wireFrame struct {
	ID     uint32          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
	Type   string          `json:"type"`
	wirePublication
	Code   uint32 `json:"code"`
	Reason string `json:"reason"`
	// Of "subscribed" pushes.
	Epoch         string `json:"epoch"`
	Recoverable   bool   `json:"recoverable"`
	WasRecovering bool   `json:"was_recovering"`
	Recovered     bool   `json:"recovered"`
	// Of "refresh" pushes.
	ExpiresIn int `json:"expires_in"`
}

// handle processes one frame; a non-nil result ends the connection.
func (w *wsConn) handle(line []byte) *endReason {
	var f wireFrame
	if err := json.Unmarshal(line, &f); err != nil {
		return &endReason{reason: "malformed frame from the server", err: err}
	}
	if f.ID != 0 {
		w.mu.Lock()
		pc := w.pending[f.ID]
		delete(w.pending, f.ID)
		w.mu.Unlock()
		if pc == nil {
			return nil // its caller gave up waiting
		}
		if pc.onReply != nil {
			if err := pc.onReply(f.Result, f.Error); err != nil {
				return asEndReason(err)
			}
		}
		if pc.reply != nil {
			var err error
			if f.Error != nil {
				err = f.Error
			}
			pc.reply <- callReply{result: f.Result, err: err}
		}
		return nil
	}
	c := w.t.c
	switch f.Type {
	case protocol.PushPublication:
		if err := c.deliver(w, f.publication("")); err != nil {
			return asEndReason(err)
		}
	case protocol.PushJoin, protocol.PushLeave:
		var info ClientInfo
		if f.Info != nil {
			info = *f.Info
		}
		if err := c.presence(w, f.Type == protocol.PushJoin, f.Channel, info); err != nil {
			return asEndReason(err)
		}
	case protocol.PushPing:
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		if err := w.mc.Write(ctx, []byte(`{"method":"pong"}`)); err != nil {
			return &endReason{reason: "write pong", err: err}
		}
	case protocol.PushUnsubscribe:
		return w.unsubscribed(f.Channel, &Error{Code: f.Code, Message: f.Reason})
	case protocol.PushSubscribed:
		c.serverSubscribed(w, f.Channel, protocol.SubscribeResult{Epoch: f.Epoch, Offset: f.Offset, Recoverable: f.Recoverable, WasRecovering: f.WasRecovering, Recovered: f.Recovered})
	case protocol.PushRefresh:
		w.refresh(f.ExpiresIn)
	case protocol.PushDisconnect:
		// Sent where the connection has no close frame of its own.
		return closeReason(uint16(f.Code), f.Reason)
	}
	return nil
}

// unsubscribed handles the server ending one subscription: for good, or,
// for a temporary reason, by subscribing again. A channel with no
// Subscription on w is a server-side subscription.
func (w *wsConn) unsubscribed(channel string, e *Error) *endReason {
	c := w.t.c
	c.mu.Lock()
	sub := c.subs[channel]
	if sub == nil || sub.conn != w || sub.state == SubscriptionUnsubscribed {
		defer c.mu.Unlock()
		return c.serverUnsubscribedLocked(channel, e)
	}
	if !temporary(e.Code) {
		sub.refuseLocked(sub.gen.Load(), e)
		c.mu.Unlock()
		return nil
	}
	sub.errorLocked(e)
	sub.conn = nil
	sub.setStateLocked(SubscriptionSubscribing)
	cmd := w.t.subscribeCommandLocked(w, sub)
	c.mu.Unlock()
	w.send([]outCommand{cmd})
	return nil
}

// messageConn is a bidirectional connection carrying text messages.
type messageConn interface {
	// Read returns the next text message. An error ends the connection; an
	// *endReason error says why the server closed it.
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	// Close ends the connection at once.
	Close()
}

// dialWebSocket opens the WebSocket at /ws.
func (c *Client) dialWebSocket(ctx context.Context) (messageConn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/ws"
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.streamHC, HTTPHeader: c.cfg.Header})
	if err != nil {
		r := &endReason{reason: "websocket handshake", err: err}
		if resp != nil {
			r.permanent = refusedStatus(resp.StatusCode)
		}
		return nil, r
	}
	ws.SetReadLimit(wsReadLimit)
	return wsMessages{ws}, nil
}

// refusedStatus reports whether an HTTP status refusing a connection would
// refuse it again.
func refusedStatus(s int) bool {
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}

// wsMessages is a messageConn on a WebSocket.
type wsMessages struct{ ws *websocket.Conn }

func (m wsMessages) Read(ctx context.Context) ([]byte, error) {
	for {
		typ, msg, err := m.ws.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return nil, closeReason(uint16(ce.Code), ce.Reason)
			}
			return nil, err
		}
		if typ == websocket.MessageText {
			return msg, nil
		}
	}
}

func (m wsMessages) Write(ctx context.Context, msg []byte) error {
	return m.ws.Write(ctx, websocket.MessageText, msg)
}

func (m wsMessages) Close() { _ = m.ws.CloseNow() }
