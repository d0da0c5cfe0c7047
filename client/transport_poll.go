package client

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// pollTransport runs one poll loop for all subscriptions: each GET /poll
// names every channel with its position ("since") and the answer's "next"
// is where the following poll starts. The server keeps no state between
// polls. Long polls wait on the server for something new; short polls ask
// at Config.PollInterval.
type pollTransport struct {
	c    *Client
	long bool
}

var _ transport = (*pollTransport)(nil)

// pollSession is the session token of one run of consecutive successful
// polls: subscriptions are confirmed on it.
type pollSession struct{}

func (t *pollTransport) session(ctx context.Context) error {
	c := t.c
	ps := &pollSession{}
	for {
		if err := c.subTokens(ctx, c.wantedSubs()); err != nil {
			return err
		}
		if err := probeFresh(ctx, c, false); err != nil {
			return err
		}
		list, unconfirmed := t.plan(ps)
		if len(list) == 0 {
			c.connected(ConnectedEvent{})
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.changed:
				continue
			}
		}
		subs := make([]*Subscription, len(list))
		from := make([]StreamPosition, len(list))
		for i, pl := range list {
			subs[i], from[i] = pl.sub, pl.from
		}
		// A poll that confirms subscriptions answers at once, so Subscribe
		// does not wait a whole long poll for its confirmation.
		var timeout time.Duration
		if t.long && !unconfirmed {
			timeout = c.cfg.PollTimeout
		}
		ans, changed, err := t.pollOnce(ctx, subs, positionsString(from), timeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if changed {
				continue
			}
			if err := refused(ctx, c, list, err, false); err != errChanged {
				return err
			}
			continue
		}
		c.connected(ConnectedEvent{})
		if err := t.apply(ctx, ps, list, ans); err != nil {
			return err
		}
		if len(ans.Publications) > 0 || t.long && timeout > 0 {
			continue // more may be waiting; a long poll waits by itself
		}
		// Nothing new: pause before the next short poll (or the long poll
		// that follows a confirming one).
		pause := c.cfg.PollInterval
		if t.long {
			pause = 0
		}
		tm := time.NewTimer(pause)
		select {
		case <-tm.C:
		case <-c.changed:
			tm.Stop()
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		}
	}
}

// plan lists the subscriptions to poll, in canonical order: every wanted
// one with a position. unconfirmed is set when one of them still waits for
// its confirmation on ps.
func (t *pollTransport) plan(ps *pollSession) (list []planned, unconfirmed bool) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		if s.state == SubscriptionUnsubscribed || !s.hasWire {
			continue
		}
		list = append(list, planned{sub: s, gen: s.gen.Load(), from: s.wire, resume: true})
		unconfirmed = unconfirmed || s.conn != ps
	}
	slices.SortFunc(list, func(a, b planned) int {
		switch {
		case a.sub.channel < b.sub.channel:
			return -1
		case a.sub.channel > b.sub.channel:
			return 1
		}
		return 0
	})
	return list, unconfirmed
}

// pollOnce makes one poll. A long poll is cancelled when the wanted
// subscriptions change (changed is then set), so the next one includes
// them without waiting for this one to time out.
func (t *pollTransport) pollOnce(ctx context.Context, subs []*Subscription, since string, timeout time.Duration) (*pollAnswer, bool, error) {
	c := t.c
	if timeout == 0 {
		ans, err := c.poll(ctx, subs, since, 0)
		return ans, false, err
	}
	pctx, cancel := context.WithCancel(ctx)
	var changed atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-c.changed:
			changed.Store(true)
			cancel()
		case <-pctx.Done():
		}
	}()
	ans, err := c.poll(pctx, subs, since, timeout)
	cancel()
	<-watched
	return ans, changed.Load(), err
}

// apply delivers one poll answer: confirmations first, so that each
// precedes its subscription's publications, then the publications in
// order, then the positions to poll from next.
func (t *pollTransport) apply(ctx context.Context, ps *pollSession, list []planned, ans *pollAnswer) error {
	c := t.c
	next, err := parsePositionsList(ans.Next, len(list))
	if err != nil {
		return &endReason{reason: "poll answer", err: err}
	}
	unrecovered := make(map[string]bool, len(ans.Unrecovered))
	for _, ch := range ans.Unrecovered {
		unrecovered[ch] = true
	}
	c.mu.Lock()
	for i, pl := range list {
		s := pl.sub
		if s.gen.Load() != pl.gen || s.state == SubscriptionUnsubscribed {
			continue
		}
		lost := unrecovered[s.channel]
		switch {
		case s.conn != ps:
			start := pl.from
			if lost {
				start = next[i]
			}
			s.conn = ps
			s.confirmLocked(ps, pl.gen, SubscribedEvent{Position: start, Recoverable: true, WasRecovering: true, Recovered: !lost})
		case lost:
			// Continuity broke between two polls (history expired, epoch
			// changed): say so, as a resubscribe would.
			s.confirmLocked(ps, pl.gen, SubscribedEvent{Position: next[i], Recoverable: true, WasRecovering: true})
		}
	}
	c.mu.Unlock()
	for i := range ans.Publications {
		if err := c.deliverBlocking(ctx, ps, ans.Publications[i].publication("")); err != nil {
			return asEndReason(err)
		}
	}
	c.mu.Lock()
	for i, pl := range list {
		s := pl.sub
		if s.gen.Load() == pl.gen && s.conn == ps && s.hasWire {
			s.wire = next[i]
		}
	}
	c.mu.Unlock()
	return nil
}

func (t *pollTransport) subscribe(*Subscription) {} // the poll loop picks it up

func (t *pollTransport) unsubscribe(context.Context, *Subscription, any) error { return nil }

func (t *pollTransport) call(ctx context.Context, method string, params, out any) error {
	return t.c.httpCall(ctx, method, params, out)
}
