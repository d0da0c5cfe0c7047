package node

import (
	"context"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// Catching up: a resume whose backlog is more than the session's queue can
// take at once (the usual case after a slow-consumer disconnect, whose
// backlog overflowed that queue by definition) is served from history a
// page at a time, as the client reads. While a subscription catches up, its
// live publications are not queued, since each is in history behind the
// backlog; it only remembers the newest offset seen (liveTop). It goes live
// once a page reaches both the channel's position at that read and liveTop:
// anything newer has not been delivered to it yet and will be accepted live,
// anything older came from history.
const (
	// catchUpPage bounds the publications one history read returns, and so
	// the memory a catching-up subscription holds at once.
	catchUpPage = 512
	// catchUpTimeout bounds one page's history read.
	catchUpTimeout = 10 * time.Second
)

// fillLocked queues pubs, the continuation of the subscription's stream
// read from history when its channel's newest offset was top, while the
// session's queue is under half full, and ends the catch-up once nothing
// newer is known. Caller must hold s.mu.
func (sub *subscription) fillLocked(pubs []*protocol.Publication, top uint64) {
	s := sub.s
	budget := s.n.cfg.MaxQueueBytes / 2
	for _, p := range pubs {
		if s.out.bytes >= budget || s.closing != nil {
			break
		}
		sub.acceptLocked(p, sub.epoch, protocol.AppendPublication(nil, p))
	}
	caughtUp := sub.offset >= top && sub.offset >= sub.liveTop
	switch {
	case caughtUp && sub.catchUp:
		sub.endCatchUpLocked()
	case !caughtUp && !sub.catchUp:
		sub.catchUp = true
		s.catchingUp++
	}
}

// endCatchUpLocked stops the catch-up. Caller must hold s.mu.
func (sub *subscription) endCatchUpLocked() {
	if sub.catchUp {
		sub.catchUp = false
		sub.s.catchingUp--
	}
}

// noteLiveLocked takes a live publication for a catching-up subscription:
// it is in history, so only its offset matters. Caller must hold s.mu.
func (sub *subscription) noteLiveLocked(pub *protocol.Publication, epoch string) {
	if pub.Offset == 0 {
		// Ephemeral: it has no place in the stream the client is reading.
		return
	}
	if epoch != sub.epoch {
		sub.s.closeLocked(protocol.DisconnectInsufficient)
		return
	}
	sub.liveTop = max(sub.liveTop, pub.Offset)
}

// fetchPagesLocked starts the next page read of every catching-up
// subscription that has none in flight. Drain calls it, so pages follow
// the client's reading. Caller must hold s.mu.
func (s *Session) fetchPagesLocked() {
	for sub := range s.subs.all() {
		if sub.catchUp && !sub.fetching {
			sub.fetching = true
			go sub.fetchPage()
		}
	}
}

// fetchPage reads the page after what the subscription delivered and
// queues it.
func (sub *subscription) fetchPage() {
	s := sub.s
	s.mu.Lock()
	since := protocol.StreamPosition{Epoch: sub.epoch, Offset: sub.offset}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	hist, err := s.n.engine.History(ctx, sub.channel, engine.HistoryQuery{Since: &since, Limit: catchUpPage})
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	sub.fetching = false
	if sub.removed || !sub.catchUp || s.closing != nil || s.state == stateFinished {
		return
	}
	switch pubs := hist.Publications; {
	case err != nil:
		s.logger().Warn("catch-up history read failed", "channel", sub.channel, "err", err)
		s.closeLocked(protocol.DisconnectInternal)
	case hist.Position.Epoch != sub.epoch,
		len(pubs) == 0 && hist.Position.Offset > since.Offset,
		len(pubs) > 0 && pubs[0].Offset != since.Offset+1:
		// History was lost or trimmed past the client while it read: it
		// resumes from its position and is told what it can get.
		s.closeLocked(protocol.DisconnectInsufficient)
	default:
		sub.fillLocked(pubs, hist.Position.Offset)
	}
}
