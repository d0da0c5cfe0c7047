package node

import (
	"context"
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

// Poll answers a long or short poll. It keeps no state between calls: the
// position in the request is all it needs, so any node can answer any poll.
func (n *Node) Poll(ctx context.Context, cred Credentials, req PollRequest) (*PollResult, error) {
	channels := protocol.CanonicalChannels(req.Channels)
	if len(channels) == 0 {
		return nil, protocol.ErrBadRequest.With("at least one channel required")
	}
	if len(channels) > n.cfg.MaxChannelsPerSession {
		return nil, protocol.ErrLimitExceeded.With("at most %d channels per poll", n.cfg.MaxChannelsPerSession)
	}
	if req.Timeout < 0 || req.Timeout > MaxPollTimeout {
		return nil, protocol.ErrBadRequest.With("timeout must be between 0 and %v", MaxPollTimeout)
	}
	for _, ch := range channels {
		ns, err := n.ns.resolve(ch)
		if err != nil {
			return nil, err
		}
		if !ns.Subscribe.Allows(cred) {
			return nil, protocol.ErrPermissionDenied.With("subscribe to %q", ch)
		}
		if ns.HistorySize == 0 {
			return nil, protocol.ErrNotAvailable.With("polling %q needs history, and namespace %q keeps none", ch, ns.Name)
		}
	}
	var positions []protocol.StreamPosition
	if req.Since != "" {
		var err error
		if positions, err = protocol.ParsePositions(req.Since, len(channels)); err != nil {
			return nil, protocol.ErrInvalidPosition.With("%v", err)
		}
	}
	if n.draining.Load() {
		return nil, protocol.ErrShuttingDown
	}

	var w *pollWaiter
	if req.Timeout > 0 {
		// Register before reading so a publication landing between the read
		// and the wait still wakes us.
		w = &pollWaiter{wake: make(chan struct{}, 1)}
		for i, ch := range channels {
			if err := n.hub.add(ctx, ch, w); err != nil {
				n.removeWaiter(ctx, channels[:i], w)
				return nil, n.engineError("poll subscribe", err)
			}
		}
		defer n.removeWaiter(ctx, channels, w)
	}

	var timeout <-chan time.Time
	if w != nil {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for {
		res, next, err := n.readSince(ctx, channels, positions)
		if err != nil {
			return nil, err
		}
		positions = next
		if len(res.Publications) > 0 || !res.Recovered || w == nil {
			return res, nil
		}
		select {
		case <-w.wake:
		case <-timeout:
			return res, nil
		case <-n.done:
			return res, nil
		case <-ctx.Done():
			return nil, protocol.ErrNotAvailable.With("poll: %v", ctx.Err())
		}
	}
}

func (n *Node) removeWaiter(ctx context.Context, channels []string, w *pollWaiter) {
	ctx = context.WithoutCancel(ctx)
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
			q = engine.HistoryQuery{Since: &positions[i], Limit: n.cfg.MaxHistoryLimit}
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
	wake chan struct{}
}

func (w *pollWaiter) deliverPublication(*protocol.Publication, string, []byte) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *pollWaiter) deliverFrame(string, []byte) {}
