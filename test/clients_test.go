package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/protocol"
)

// event is what a test client observed, whatever the transport.
type event struct {
	kind    string // "publication", "subscribed" or "signal"
	channel string
	// from is the client that sent a signal.
	from   string
	offset uint64
	data   json.RawMessage
	// recovered and wasRecovering describe a subscription (kind "subscribed").
	recovered, wasRecovering bool
	// token resumes the stream right after this event.
	token any
}

// clientError is an error the server answered an open or publish with.
type clientError struct {
	code   uint32
	status int
}

func (e *clientError) Error() string { return fmt.Sprintf("error code %d (HTTP %d)", e.code, e.status) }

// conn is one open subscription stream on some transport.
type conn interface {
	events() <-chan event
	// resume is an opaque token that a later open uses to continue the
	// stream after everything this conn delivered.
	resume() any
	publish(ctx context.Context, channel string, data string) error
	close()
}

// driver opens streams over one transport. open returns once the server has
// confirmed every subscription, so publications after it are delivered.
type driver struct {
	name string
	open func(ctx context.Context, base string, channels []string, resume any) (conn, error)
}

var drivers = []driver{
	{"websocket", openWebSocket},
	{"sse", openSSE},
	{"long-poll", func(ctx context.Context, base string, ch []string, r any) (conn, error) {
		return openPoll(ctx, base, ch, r, 2)
	}},
	{"short-poll", func(ctx context.Context, base string, ch []string, r any) (conn, error) {
		return openPoll(ctx, base, ch, r, 0)
	}},
}

// httpPublish publishes as a client through POST /publish.
func httpPublish(ctx context.Context, base, channel, data string) error {
	body, _ := json.Marshal(map[string]any{"channel": channel, "data": json.RawMessage(data)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return httpError(resp)
}

func httpError(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var body struct {
		Error protocol.Error `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return &clientError{code: body.Error.Code, status: resp.StatusCode}
}

// --- WebSocket, with coder/websocket as an independent client ---

type wsConn struct {
	c      *websocket.Conn
	cancel context.CancelFunc
	out    chan event
	done   chan struct{}

	mu        sync.Mutex
	nextID    uint32
	pending   map[uint32]pendingCall
	pos       map[string]protocol.StreamPosition
	closeCode websocket.StatusCode
	// readErr is why the read loop ended, for failure messages.
	readErr error
	// id is the client id the connect reply gave.
	id string
}

func openWebSocket(ctx context.Context, base string, channels []string, resume any) (conn, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	readCtx, cancel := context.WithCancel(context.Background())
	w := &wsConn{c: c, cancel: cancel, out: make(chan event, 100000), done: make(chan struct{}),
		pending: map[uint32]pendingCall{}, pos: map[string]protocol.StreamPosition{}}
	go w.read(readCtx)
	connected, err := w.call(ctx, "connect", map[string]any{}, nil)
	if err != nil {
		w.close()
		return nil, err
	}
	var cr protocol.ConnectResult
	if err := json.Unmarshal(connected, &cr); err != nil {
		w.close()
		return nil, err
	}
	w.id = cr.Client
	prev, _ := resume.(map[string]protocol.StreamPosition)
	for _, ch := range channels {
		params := map[string]any{"channel": ch}
		if p, ok := prev[ch]; ok {
			params["recover"], params["epoch"], params["offset"] = true, p.Epoch, p.Offset
		}
		// The stream position starts at the reply; the hook runs in the read
		// loop before the recovered publications that follow the reply.
		onReply := func(res json.RawMessage) {
			var r protocol.SubscribeResult
			_ = json.Unmarshal(res, &r)
			start := protocol.StreamPosition{Epoch: r.Epoch, Offset: r.Offset}
			if r.Recovered {
				start.Offset = prev[ch].Offset
			}
			w.pos[ch] = start
			w.out <- event{kind: "subscribed", channel: ch, recovered: r.Recovered, wasRecovering: r.WasRecovering}
		}
		if _, err := w.call(ctx, "subscribe", params, onReply); err != nil {
			w.close()
			return nil, err
		}
	}
	return w, nil
}

// pendingCall is a command waiting for its reply. onResult, if set, runs in
// the read loop with w.mu held when a successful reply arrives, before any
// later frame is handled.
type pendingCall struct {
	reply    chan map[string]json.RawMessage
	onResult func(json.RawMessage)
}

func (w *wsConn) call(ctx context.Context, method string, params any, onResult func(json.RawMessage)) (json.RawMessage, error) {
	w.mu.Lock()
	w.nextID++
	id := w.nextID
	ch := make(chan map[string]json.RawMessage, 1)
	w.pending[id] = pendingCall{ch, onResult}
	w.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if e, ok := r["error"]; ok {
			var pe protocol.Error
			_ = json.Unmarshal(e, &pe)
			return nil, &clientError{code: pe.Code}
		}
		return r["result"], nil
	case <-w.done:
		return nil, fmt.Errorf("connection closed (code %d: %v) before reply to %s", w.closeCode, w.readErr, method)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *wsConn) read(ctx context.Context) {
	defer close(w.done)
	for {
		_, msg, err := w.c.Read(ctx)
		if err != nil {
			w.mu.Lock()
			w.closeCode = websocket.CloseStatus(err)
			w.readErr = err
			w.mu.Unlock()
			return
		}
		for _, line := range bytes.Split(msg, []byte("\n")) {
			var f map[string]json.RawMessage
			if err := json.Unmarshal(line, &f); err != nil {
				return
			}
			if id, ok := f["id"]; ok {
				var n uint32
				_ = json.Unmarshal(id, &n)
				w.mu.Lock()
				pc, ok := w.pending[n]
				delete(w.pending, n)
				if ok && pc.onResult != nil && f["result"] != nil {
					pc.onResult(f["result"])
				}
				w.mu.Unlock()
				if ok {
					pc.reply <- f
				}
				continue
			}
			var typ string
			_ = json.Unmarshal(f["type"], &typ)
			switch typ {
			case "ping":
				_ = w.c.Write(ctx, websocket.MessageText, []byte(`{"method":"pong"}`))
			case "signal":
				var sp protocol.SignalPush
				_ = json.Unmarshal(line, &sp)
				w.out <- event{kind: "signal", channel: sp.Channel, from: sp.From.Client, data: sp.Data}
			case "publication":
				var p protocol.Publication
				_ = json.Unmarshal(line, &p)
				w.mu.Lock()
				if p.Offset > 0 {
					pos := w.pos[p.Channel]
					pos.Offset = p.Offset
					w.pos[p.Channel] = pos
				}
				w.mu.Unlock()
				w.out <- event{kind: "publication", channel: p.Channel, offset: p.Offset, data: p.Data, token: w.resume()}
			}
		}
	}
}

func (w *wsConn) events() <-chan event { return w.out }

func (w *wsConn) resume() any {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]protocol.StreamPosition, len(w.pos))
	for k, v := range w.pos {
		out[k] = v
	}
	return out
}

func (w *wsConn) publish(ctx context.Context, channel, data string) error {
	_, err := w.call(ctx, "publish", map[string]any{"channel": channel, "data": json.RawMessage(data)}, nil)
	return err
}

func (w *wsConn) close() {
	_ = w.c.CloseNow()
	w.cancel()
	<-w.done
}

// --- SSE, read raw from net/http ---

type sseConn struct {
	base   string
	cancel context.CancelFunc
	out    chan event
	done   chan struct{}

	mu     sync.Mutex
	lastID string
}

func openSSE(ctx context.Context, base string, channels []string, resume any) (conn, error) {
	q := url.Values{"channel": channels}
	streamCtx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(streamCtx, http.MethodGet, base+"/sse?"+q.Encode(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if id, _ := resume.(string); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := httpError(resp); err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("content type %q", ct)
	}
	s := &sseConn{base: base, cancel: cancel, out: make(chan event, 100000), done: make(chan struct{})}
	if id, _ := resume.(string); id != "" {
		s.lastID = id
	}
	subscribed := make(chan struct{})
	go s.read(resp, len(channels), subscribed)
	select {
	case <-subscribed:
		return s, nil
	case <-s.done:
		return nil, errors.New("stream ended before every channel was subscribed")
	case <-ctx.Done():
		s.close()
		return nil, ctx.Err()
	}
}

func (s *sseConn) read(resp *http.Response, channels int, subscribed chan struct{}) {
	defer close(s.done)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, name string
	var data []byte
	hasID, seen := false, 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			s.mu.Lock()
			if hasID {
				s.lastID = id
			}
			token := s.lastID
			s.mu.Unlock()
			if data != nil {
				s.dispatch(name, data, token, &seen, channels, subscribed)
			}
			id, name, data, hasID = "", "", nil, false
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "id:"):
			id, hasID = strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " "), true
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimPrefix(strings.TrimPrefix(line, "event:"), " ")
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
	}
}

func (s *sseConn) dispatch(name string, data []byte, token string, seen *int, channels int, subscribed chan struct{}) {
	switch name {
	case "":
		var p protocol.Publication
		if json.Unmarshal(data, &p) == nil {
			s.out <- event{kind: "publication", channel: p.Channel, offset: p.Offset, data: p.Data, token: token}
		}
	case "subscribed":
		var r struct {
			Channel string `json:"channel"`
			protocol.SubscribeResult
		}
		if json.Unmarshal(data, &r) == nil {
			s.out <- event{kind: "subscribed", channel: r.Channel, recovered: r.Recovered, wasRecovering: r.WasRecovering}
			if *seen++; *seen == channels {
				close(subscribed)
			}
		}
	}
}

func (s *sseConn) events() <-chan event { return s.out }

func (s *sseConn) resume() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

func (s *sseConn) publish(ctx context.Context, channel, data string) error {
	return httpPublish(ctx, s.base, channel, data)
}

func (s *sseConn) close() {
	s.cancel()
	<-s.done
}

// --- long and short polling, plain HTTP ---

type pollConn struct {
	base string
	// channels are in canonical order, as positions list them.
	channels []string
	cancel   context.CancelFunc
	out      chan event
	done     chan struct{}
	mu       sync.Mutex
	next     string
}

type pollResponse struct {
	Publications []protocol.Publication `json:"publications"`
	Next         string                 `json:"next"`
	Recovered    bool                   `json:"recovered"`
	Unrecovered  []string               `json:"unrecovered"`
}

func poll(ctx context.Context, base string, channels []string, since string, timeout int) (*pollResponse, error) {
	q := url.Values{"channel": channels, "timeout": {fmt.Sprint(timeout)}}
	if since != "" {
		q.Set("since", since)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/poll?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := httpError(resp); err != nil {
		return nil, err
	}
	var r pollResponse
	return &r, json.NewDecoder(resp.Body).Decode(&r)
}

// openPoll makes a first poll at once, so the stream position is fixed when
// open returns, then keeps polling in the background.
func openPoll(ctx context.Context, base string, channels []string, resume any, timeout int) (conn, error) {
	since, _ := resume.(string)
	first, err := poll(ctx, base, channels, since, 0)
	if err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	p := &pollConn{base: base, channels: protocol.CanonicalChannels(channels), cancel: cancel, out: make(chan event, 100000), done: make(chan struct{})}
	p.next = since
	unrecovered := map[string]bool{}
	for _, ch := range first.Unrecovered {
		unrecovered[ch] = true
	}
	for _, ch := range channels {
		p.out <- event{kind: "subscribed", channel: ch, wasRecovering: since != "", recovered: since != "" && !unrecovered[ch]}
	}
	p.deliver(first)
	go func() {
		defer close(p.done)
		for loopCtx.Err() == nil {
			p.mu.Lock()
			since := p.next
			p.mu.Unlock()
			r, err := poll(loopCtx, base, channels, since, timeout)
			if err != nil {
				return
			}
			p.deliver(r)
			if timeout == 0 {
				// Short polling asks again after an interval; that interval
				// is the transport's latency, not a wait for correctness.
				select {
				case <-time.After(20 * time.Millisecond):
				case <-loopCtx.Done():
				}
			}
		}
	}()
	return p, nil
}

// deliver emits a batch. Each event's token is the position string after
// it: the batch's "next" with the channels not yet reached at their
// previous offsets, in the documented position format.
func (p *pollConn) deliver(r *pollResponse) {
	next, err := protocol.ParsePositions(r.Next, len(p.channels))
	if err != nil {
		panic(fmt.Sprintf("server sent unparsable next %q: %v", r.Next, err))
	}
	// The lock spans the whole batch so that resume never returns a position
	// older than an event already emitted: a reader may consume the batch
	// and ask for resume before next would otherwise be updated.
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, err := protocol.ParsePositions(p.next, len(p.channels))
	cur := make([]protocol.StreamPosition, len(next))
	for i := range cur {
		cur[i] = next[i]
		if err == nil && prev[i].Epoch == next[i].Epoch {
			cur[i] = prev[i]
		}
	}
	for _, pub := range r.Publications {
		for i, ch := range p.channels {
			if ch == pub.Channel {
				cur[i].Offset = pub.Offset
			}
		}
		p.out <- event{kind: "publication", channel: pub.Channel, offset: pub.Offset, data: pub.Data, token: protocol.FormatPositions(cur)}
	}
	p.next = r.Next
}

func (p *pollConn) events() <-chan event { return p.out }

func (p *pollConn) resume() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

func (p *pollConn) publish(ctx context.Context, channel, data string) error {
	return httpPublish(ctx, p.base, channel, data)
}

func (p *pollConn) close() {
	p.cancel()
	<-p.done
}
