package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// sseTransport carries every subscription on one Server-Sent Events stream
// and sends commands as HTTP requests. Adding or removing a subscription
// reopens the stream with the new channel list, resuming every channel from
// its position with Last-Event-ID, exactly as a browser's EventSource
// reconnect does.
type sseTransport struct {
	c *Client
}

var _ transport = (*sseTransport)(nil)

// errChanged ends one stream (or poll) because the set of wanted
// subscriptions changed; the session goes on with the new set at once.
var errChanged = errors.New("client: subscriptions changed")

// errRefresh ends one stream because the server asked for a fresh token,
// which only a new stream can bring; the session goes on with it at once.
var errRefresh = errors.New("client: token refresh")

// planned is a subscription as it was when a stream or poll was planned.
type planned struct {
	sub *Subscription
	gen uint64
	// from is the position the stream resumes it from; resume is false
	// when it has none.
	from   StreamPosition
	resume bool
}

// sseStream is one opened stream: the session token subscriptions are
// confirmed on.
type sseStream struct {
	channels []string // canonical order, as positions list them
	subs     map[string]planned
	// withID: the stream was opened with Last-Event-ID, so the server
	// resumed every channel.
	withID bool
}

func (t *sseTransport) session(ctx context.Context) error {
	c := t.c
	for {
		if err := c.subTokens(ctx, c.wantedSubs()); err != nil {
			return err
		}
		if err := probeFresh(ctx, c, true); err != nil {
			return err
		}
		st, lastID := t.plan()
		if len(st.channels) == 0 {
			c.connected(ConnectedEvent{})
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.changed:
				continue
			}
		}
		switch err := t.stream(ctx, st, lastID); err {
		case errChanged:
		case errRefresh:
			// The new stream resumes every channel from its position, as
			// after any change.
			if _, err := c.fetchToken(ctx); err != nil {
				return tokenFailure(err)
			}
		default:
			return err
		}
	}
}

// plan lists the wanted subscriptions in canonical order and marks them as
// being subscribed on a new stream. lastID resumes all of them, or is ""
// when some channel has no position to resume from.
func (t *sseTransport) plan() (*sseStream, string) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &sseStream{subs: make(map[string]planned)}
	all := true
	for ch, s := range c.subs {
		if s.state == SubscriptionUnsubscribed {
			continue
		}
		if !s.hasWire && !s.confirmedOnce && !s.noHistory {
			// Subscribed after the probes ran: without its position it
			// would keep the stream from resuming the others. It is
			// probed before the next stream, which its change signal
			// brings about.
			continue
		}
		st.channels = append(st.channels, ch)
		s.conn = st
		st.subs[ch] = planned{sub: s, gen: s.gen.Load(), from: s.wire, resume: s.hasWire}
		all = all && s.hasWire
	}
	slices.Sort(st.channels)
	if len(st.channels) == 0 || !all {
		return st, ""
	}
	ps := make([]StreamPosition, len(st.channels))
	for i, ch := range st.channels {
		ps[i] = st.subs[ch].from
	}
	st.withID = true
	return st, positionsString(ps)
}

// stream opens st and reads it until it ends, the subscriptions change or
// ctx is done.
func (t *sseTransport) stream(ctx context.Context, st *sseStream, lastID string) error {
	c := t.c
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := url.Values{"channel": st.channels}
	subs := make([]*Subscription, len(st.channels))
	for i, ch := range st.channels {
		subs[i] = st.subs[ch].sub
	}
	resp, err := c.do(sctx, c.streamHC, subs, func() (*http.Request, error) {
		q["sub_token"] = c.subTokenList(subs)
		req, err := http.NewRequestWithContext(sctx, http.MethodGet, c.base+"/sse?"+q.Encode(), nil)
		if err != nil {
			return nil, &endReason{permanent: true, err: err}
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cache-Control", "no-cache")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		return req, nil
	})
	var r *endReason
	switch {
	case err == nil:
	case answered(err):
		return t.openFailed(ctx, st, err)
	case errors.As(err, &r):
		return r
	default:
		return &endReason{reason: "sse stream", err: err}
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return &endReason{reason: "sse stream: content type " + ct}
	}
	c.connected(ConnectedEvent{})

	// Silence longer than IdleTimeout means the stream is dead: the server
	// sends keep-alive comments well within it.
	var idle atomic.Bool
	timer := time.AfterFunc(c.cfg.IdleTimeout, func() { idle.Store(true); cancel() })
	defer timer.Stop()
	p := newSSEParser(resp.Body)
	p.onLine = func() { timer.Reset(c.cfg.IdleTimeout) }

	done := make(chan error, 1)
	go func() { done <- t.read(st, p) }()
	select {
	case err = <-done:
	case <-c.changed:
		cancel()
		<-done
		return errChanged
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
	if idle.Load() {
		return &endReason{reason: "sse stream silent for " + c.cfg.IdleTimeout.String()}
	}
	return err
}

// read handles the stream's events until it ends.
func (t *sseTransport) read(st *sseStream, p *sseParser) error {
	c := t.c
	for {
		ev, err := p.next()
		if err == io.EOF {
			return &endReason{reason: "sse stream closed by the server"}
		}
		if err != nil {
			return &endReason{reason: "sse stream", err: err}
		}
		switch ev.name {
		case "":
			var wp wirePublication
			if err := json.Unmarshal(ev.data, &wp); err != nil {
				return &endReason{reason: "malformed sse publication", err: err}
			}
			if err := c.deliver(st, wp.publication("")); err != nil {
				return err
			}
		case "subscribed":
			if err := t.subscribed(st, ev); err != nil {
				return err
			}
		case protocol.PushJoin, protocol.PushLeave:
			var d struct {
				Channel string     `json:"channel"`
				Info    ClientInfo `json:"info"`
			}
			if err := json.Unmarshal(ev.data, &d); err != nil {
				return &endReason{reason: "malformed sse " + ev.name, err: err}
			}
			if err := c.presence(st, ev.name == protocol.PushJoin, d.Channel, d.Info); err != nil {
				return err
			}
		case protocol.PushDisconnect:
			var d struct {
				Code      uint16 `json:"code"`
				Reason    string `json:"reason"`
				Reconnect bool   `json:"reconnect"`
			}
			if err := json.Unmarshal(ev.data, &d); err != nil {
				return &endReason{reason: "malformed sse disconnect", err: err}
			}
			r := closeReason(d.Code, d.Reason)
			r.permanent = r.permanent || !d.Reconnect
			return r
		case protocol.PushRefresh:
			// Without GetToken there is no fresh token to reopen with: the
			// server ends the stream at expiry (4505), and the client
			// stops with ErrTokenExpired.
			if c.cfg.GetToken != nil {
				return errRefresh
			}
		}
	}
}

// subscribed handles a channel's "subscribed" event.
func (t *sseTransport) subscribed(st *sseStream, ev sseEvent) error {
	var d struct {
		Channel string `json:"channel"`
		protocol.SubscribeResult
	}
	if err := json.Unmarshal(ev.data, &d); err != nil {
		return &endReason{reason: "malformed sse subscribed event", err: err}
	}
	pl, ok := st.subs[d.Channel]
	if !ok {
		return nil
	}
	// The event's data holds the channel's newest position; the stream
	// continues from the event's id, which is where the server resumed it.
	start := StreamPosition{Epoch: d.Epoch, Offset: d.Offset}
	if d.Recovered {
		start.Offset = pl.from.Offset
	}
	if ev.hasID {
		if ps, err := parsePositionsList(ev.id, len(st.channels)); err == nil {
			i, _ := slices.BinarySearch(st.channels, d.Channel)
			start = ps[i]
		}
	}
	sev := SubscribedEvent{Position: start, Recoverable: d.Recoverable, WasRecovering: d.WasRecovering, Recovered: d.Recovered}
	if pl.resume && !st.withID {
		// The subscription had a position, but another channel of the
		// stream had none, so the stream could not resume: continuity is
		// broken for this one.
		sev.WasRecovering, sev.Recovered = true, false
	}
	c := t.c
	c.mu.Lock()
	pl.sub.confirmLocked(st, pl.gen, sev)
	c.mu.Unlock()
	return nil
}

// openFailed handles a stream the server refused. A refusal that names a
// channel (bad name, no permission, unknown namespace) ends the offending
// subscriptions and reopens without them; others end the session.
func (t *sseTransport) openFailed(ctx context.Context, st *sseStream, err error) error {
	list := make([]planned, 0, len(st.channels))
	for _, ch := range st.channels {
		list = append(list, st.subs[ch])
	}
	return refused(ctx, t.c, list, err, true)
}

func (t *sseTransport) subscribe(*Subscription) {} // the session reopens the stream

func (t *sseTransport) unsubscribe(context.Context, *Subscription, any) error { return nil }

func (t *sseTransport) call(ctx context.Context, method string, params, out any) error {
	return t.c.httpCall(ctx, method, params, out)
}

// probeFresh finds where each new subscription without a position starts,
// with a short poll from "now", which also checks that the server accepts
// the channel (name, namespace, permission) without subscribing anything.
// The stream or poll that follows resumes from there, and confirms it. On
// SSE (sse set) a channel without history has no position and is left as
// it is; on polling, which needs history, that is a refusal.
func probeFresh(ctx context.Context, c *Client, sse bool) error {
	c.mu.Lock()
	var fresh []planned
	for _, s := range c.subs {
		// On SSE, a channel without history never has a position; once
		// the stream accepted it there is nothing left to probe.
		if s.state == SubscriptionSubscribing && !s.hasWire && !(sse && (s.confirmedOnce || s.noHistory)) {
			fresh = append(fresh, planned{sub: s, gen: s.gen.Load()})
		}
	}
	c.mu.Unlock()
	for _, pl := range fresh {
		ans, err := c.poll(ctx, []*Subscription{pl.sub}, "", 0)
		if err != nil {
			r := httpEndReason(err)
			var e *Error
			switch {
			case r.permanent || !errors.As(err, &e):
				return r
			case e.Code == CodeNotAvailable && sse:
				// No history: the stream starts it from "now".
				c.mu.Lock()
				if pl.sub.gen.Load() == pl.gen {
					pl.sub.noHistory = true
				}
				c.mu.Unlock()
				continue
			case e.Code == CodeNotAvailable || !temporary(e.Code):
				c.mu.Lock()
				pl.sub.refuseLocked(pl.gen, e)
				c.mu.Unlock()
				continue
			}
			return r
		}
		next, _ := parsePositionsList(ans.Next, 1)
		c.mu.Lock()
		if pl.sub.gen.Load() == pl.gen && pl.sub.state == SubscriptionSubscribing {
			pl.sub.wire, pl.sub.hasWire = next[0], true
		}
		c.mu.Unlock()
	}
	return nil
}

// refused handles a stream open or poll the server refused with err.
// Refusals that concern one channel end the subscriptions they concern:
// the one not yet accepted when only one is, else each that a poll of its
// own finds refused. It returns errChanged when it ended some (the caller
// retries at once without them), and the refusal otherwise.
func refused(ctx context.Context, c *Client, list []planned, err error, sse bool) error {
	r := httpEndReason(err)
	var e *Error
	if r.permanent || !errors.As(err, &e) || temporary(e.Code) && !(e.Code == CodeNotAvailable && !sse) {
		return r
	}
	if e.Code == CodeInvalidPosition {
		// Positions this client made itself were refused: resuming is
		// impossible, so start over from "now".
		c.mu.Lock()
		for _, pl := range list {
			pl.sub.hasWire = false
		}
		c.mu.Unlock()
		return errChanged
	}
	if e.Code == CodeLimitExceeded {
		// Too many channels for one stream or poll: refuse the newest
		// subscription, then try again with the others.
		c.mu.Lock()
		newest := list[0]
		for _, pl := range list[1:] {
			if pl.sub.seq > newest.sub.seq {
				newest = pl
			}
		}
		newest.sub.refuseLocked(newest.gen, e)
		c.mu.Unlock()
		return errChanged
	}
	c.mu.Lock()
	var candidates []planned
	for _, pl := range list {
		if !pl.sub.confirmedOnce {
			candidates = append(candidates, pl)
		}
	}
	c.mu.Unlock()
	if len(candidates) == 0 {
		candidates = list
	}
	if len(candidates) == 1 {
		c.mu.Lock()
		candidates[0].sub.refuseLocked(candidates[0].gen, e)
		c.mu.Unlock()
		return errChanged
	}
	found := false
	for _, pl := range candidates {
		_, perr := c.poll(ctx, []*Subscription{pl.sub}, "", 0)
		var pe *Error
		if !errors.As(perr, &pe) || temporary(pe.Code) && !(pe.Code == CodeNotAvailable && !sse) {
			continue
		}
		c.mu.Lock()
		pl.sub.refuseLocked(pl.gen, pe)
		c.mu.Unlock()
		found = true
	}
	if found {
		return errChanged
	}
	return r
}
