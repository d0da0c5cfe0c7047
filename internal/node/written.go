package node

import "time"

// Wrote tells the session that its transport has written the items of the
// last Drain to the connection: written frames went out, and superseded
// latest-only publications were skipped for a newer one of their channel.
// The Observer learns of both and, when live publications were among the
// items, of the time since the engine accepted the oldest of them. That is
// one clock read per flush, not per publication; publications replayed
// from history (recovery, catch-up) are not timed.
func (s *Session) Wrote(written, superseded int) {
	if written == 0 && superseded == 0 {
		return
	}
	s.mu.Lock()
	since := s.drainedSince
	s.drainedSince = 0
	s.mu.Unlock()
	obs := s.n.observer()
	if superseded > 0 {
		obs.Dropped(s.t.Name(), DropSuperseded, superseded)
	}
	latency := time.Duration(-1)
	if since != 0 && written > 0 {
		// Another node's clock may run ahead of this one's: a publication
		// from the future was delivered at once.
		latency = max(time.Since(time.UnixMilli(since)), 0)
	}
	obs.Flushed(s.t.Name(), written, latency)
}
