package node

import (
	"context"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// PollRequest asks for publications on Channels after Since, a position
// string from an earlier poll or SSE event ("" means "from now"), waiting up
// to Timeout for one to arrive (0 returns at once: short polling).
type PollRequest struct {
	Channels []string
	Since    string
	Timeout  time.Duration
	// SubscriptionTokens grant channels in private namespaces.
	SubscriptionTokens []string
}

// PollResult is one poll's answer. Next is the position to poll from next.
// Recovered is false when some channels' positions could not be resumed
// (listed in Unrecovered): those channels continue from now, and the client
// should reload their state.
type PollResult struct {
	Publications []*protocol.Publication `json:"publications"`
	Next         string                  `json:"next"`
	Recovered    bool                    `json:"recovered"`
	Unrecovered  []string                `json:"unrecovered,omitempty"`
}

// MaxPollTimeout bounds how long one long poll may wait, so proxies between
// the client and the server do not time it out first.
const MaxPollTimeout = 60 * time.Second

// Poll answers a long or short poll, waiting on the calling goroutine. It
// keeps no state between calls: the position in the request is all it needs,
// so any node can answer any poll.
func (n *Node) Poll(ctx context.Context, cred Credentials, req PollRequest) (*PollResult, error) {
	wake := make(chan struct{}, 1)
	res, pw, err := n.StartPoll(ctx, cred, req, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if pw == nil {
		return res, err
	}
	defer pw.Close()
	t := time.NewTimer(req.Timeout)
	defer t.Stop()
	for {
		select {
		case <-wake:
			if res, ready, err := pw.Check(ctx); err != nil || ready {
				return res, err
			}
		case <-t.C:
			res, _, err := pw.Check(ctx)
			return res, err
		case <-ctx.Done():
			return nil, protocol.ErrNotAvailable.With("poll: %v", ctx.Err())
		}
	}
}

// StartPoll begins a poll without waiting for it, for transports that wait
// without a goroutine per poll. It validates req and reads once. It returns
// the answer to give now (a short poll, or something newer than req.Since
// already exists, or the node is shutting down), or else a PollWait that is
// already listening on the channels.
//
// notify is called when a PollWait may be able to answer: something was
// published on one of its channels (possibly ephemeral, so Check may find
// nothing), or the node began shutting down. It is called from the node's
// fan-out path, possibly before StartPoll returns and possibly many times, and
// must not block. It is never called for a poll that StartPoll answers at once.
//
// The caller owns the deadline: at req.Timeout it answers with Check's result
// whatever Check reports. It must Close the PollWait when done with it.
func (n *Node) StartPoll(ctx context.Context, cred Credentials, req PollRequest, notify func()) (*PollResult, *PollWait, error) {
	channels := protocol.CanonicalChannels(req.Channels)
	if len(channels) == 0 {
		return nil, nil, protocol.ErrBadRequest.With("at least one channel required")
	}
	if most := n.limits().MaxChannelsPerSession; len(channels) > most {
		return nil, nil, protocol.ErrLimitExceeded.With("at most %d channels per poll", most)
	}
	if req.Timeout < 0 || req.Timeout > MaxPollTimeout {
		return nil, nil, protocol.ErrBadRequest.With("timeout must be between 0 and %v", MaxPollTimeout)
	}
	grants, err := n.VerifySubscriptionTokens(ctx, req.SubscriptionTokens, channels)
	if err != nil {
		return nil, nil, err
	}
	for _, ch := range channels {
		ns, err := n.ns.resolve(ch)
		if err != nil {
			return nil, nil, err
		}
		az := authorization{}
		if g, ok := grants[ch]; ok {
			az.grant = &g
		}
		if err := n.authorizeSubscribe(ctx, nil, cred, ns, ch, az); err != nil {
			return nil, nil, err
		}
		if ns.HistorySize == 0 {
			return nil, nil, protocol.ErrNotAvailable.With("polling %q needs history, and namespace %q keeps none", ch, ns.Name)
		}
	}
	var positions []protocol.StreamPosition
	if req.Since != "" {
		var err error
		if positions, err = protocol.ParsePositions(req.Since, len(channels)); err != nil {
			return nil, nil, protocol.ErrInvalidPosition.With("%v", err)
		}
	}
	if n.draining.Load() {
		return nil, nil, protocol.ErrShuttingDown
	}
	if req.Timeout == 0 {
		res, _, err := n.readSince(ctx, channels, positions)
		return res, nil, err
	}

	// Register before reading so a publication landing between the read and
	// the wait still notifies; register with the node before checking done
	// so a Shutdown either is seen here or notifies this wait.
	pw := &PollWait{n: n, channels: channels, positions: positions, w: &pollWaiter{notify: notify}}
	n.polls.add(pw)
	for i, ch := range channels {
		if err := n.hub.add(ctx, ch, pw.w); err != nil {
			pw.Close()
			return nil, nil, n.engineError("poll subscribe", err)
		}
		pw.subscribed = i + 1
	}
	res, ready, err := pw.Check(ctx)
	if err != nil || ready {
		pw.Close()
		return res, nil, err
	}
	select {
	case <-n.done:
		pw.Close()
		return res, nil, nil
	default:
	}
	return nil, pw, nil
}

// PollWait is a long poll that found nothing newer than its position and
// listens on its channels. Check and Close may be called from any goroutine,
// Check by one at a time.
type PollWait struct {
	n          *Node
	channels   []string
	positions  []protocol.StreamPosition
	last       *PollResult
	w          *pollWaiter
	subscribed int // channels[:subscribed] hold w in the hub
	closeOnce  sync.Once
}

// Check reads the channels again from the position reached. It returns the
// answer as of now, and reports whether it is worth giving before the
// deadline: it holds publications, some position could not be resumed, or the
// node is shutting down (then the answer is the last one read, without
// touching the engine, which is closing).
func (pw *PollWait) Check(ctx context.Context) (*PollResult, bool, error) {
	select {
	case <-pw.n.done:
		if pw.last != nil {
			return pw.last, true, nil
		}
	default:
	}
	res, next, err := pw.n.readSince(ctx, pw.channels, pw.positions)
	if err != nil {
		return nil, false, err
	}
	pw.positions, pw.last = next, res
	return res, len(res.Publications) > 0 || !res.Recovered, nil
}

// Close stops listening; notify is not called after it returns, except by a
// delivery already in progress. Closing again does nothing.
func (pw *PollWait) Close() {
	pw.closeOnce.Do(func() {
		pw.n.polls.remove(pw)
		pw.n.removeWaiter(context.Background(), pw.channels[:pw.subscribed], pw.w)
	})
}

// pollRegistry holds the waiting polls so Shutdown can tell them to answer.
// Its zero value is empty.
type pollRegistry struct {
	mu    sync.Mutex
	waits map[*PollWait]struct{}
}

func (r *pollRegistry) add(pw *PollWait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waits == nil {
		r.waits = make(map[*PollWait]struct{})
	}
	r.waits[pw] = struct{}{}
}

func (r *pollRegistry) remove(pw *PollWait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waits, pw)
}

// all lists the waiting polls; callers notify them outside the lock, so a
// notify may close its wait.
func (r *pollRegistry) all() []*PollWait {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*PollWait, 0, len(r.waits))
	for pw := range r.waits {
		all = append(all, pw)
	}
	return all
}

func (n *Node) removeWaiter(ctx context.Context, channels []string, w *pollWaiter) {
	for _, ch := range channels {
		if err := n.hub.remove(ctx, ch, w); err != nil {
			n.log.Warn("engine unsubscribe failed", "channel", ch, "err", err)
		}
	}
}

// readSince reads each channel's publications after its position (all
// positions are "now" when positions is nil) and returns the result with the
// positions it advanced to.
func (n *Node) readSince(ctx context.Context, channels []string, positions []protocol.StreamPosition) (*PollResult, []protocol.StreamPosition, error) {
	res := &PollResult{Recovered: true}
	next := make([]protocol.StreamPosition, len(channels))
	budget := n.cfg.MaxQueueBytes
	for i, ch := range channels {
		q := engine.HistoryQuery{}
		if positions != nil {
			q = engine.HistoryQuery{Since: &positions[i], Limit: n.limits().MaxHistoryLimit}
		}
		hist, err := n.engine.History(ctx, ch, q)
		if err != nil {
			return nil, nil, n.engineError("poll history", err)
		}
		next[i] = hist.Position
		if positions == nil {
			continue
		}
		since := positions[i]
		pubs := hist.Publications
		ok := since.Epoch == hist.Position.Epoch && since.Offset <= hist.Position.Offset &&
			(since.Offset == hist.Position.Offset || len(pubs) > 0 && pubs[0].Offset == since.Offset+1)
		if !ok {
			res.Recovered = false
			res.Unrecovered = append(res.Unrecovered, ch)
			continue
		}
		next[i].Offset = since.Offset
		// Bound the response in bytes as well as in count; a response always
		// makes progress with at least one publication.
		for _, p := range pubs {
			if budget <= 0 && len(res.Publications) > 0 {
				break
			}
			budget -= len(p.Data) + len(p.Channel) + 64
			res.Publications = append(res.Publications, p)
			// A limited read stops short of the newest offset: the next
			// poll continues from the last publication returned.
			next[i].Offset = p.Offset
		}
	}
	res.Next = protocol.FormatPositions(next)
	if res.Publications == nil {
		res.Publications = []*protocol.Publication{}
	}
	return res, next, nil
}

// pollWaiter is a hub subscriber that only signals that something arrived.
type pollWaiter struct {
	notify func()
}

func (w *pollWaiter) deliverPublication(*protocol.Publication, string, []byte) { w.notify() }

func (w *pollWaiter) deliverFrame(string, []byte) {}

// checkPosition wakes the poll: it reads history itself, so whatever was
// lost reaches it there.
func (w *pollWaiter) checkPosition(protocol.StreamPosition) { w.notify() }
