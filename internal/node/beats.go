package node

import (
	"sync"
	"time"
)

// beatSlots is the size of the wheel's ring. A deadline further away than
// beatSlots ticks waits in its slot for the wheel to come round again.
const beatSlots = 1024

// beatWheel keeps the heartbeat deadlines of a node's bidirectional
// sessions: connect deadline, next ping, pong deadline, one at a time per
// session. A Go timer costs 144 bytes a session (the runtime's timer and the
// bound method it calls); here a deadline is a 16-byte entry in a slot of a
// ring of ticks, and one runtime timer, armed while any deadline is pending,
// advances the ring. A deadline fires up to one tick late.
//
// Lock order: Session.mu → beatWheel.mu. The wheel calls into sessions only
// without its lock.
type beatWheel struct {
	tick   time.Duration
	origin time.Time

	mu    sync.Mutex
	slots [beatSlots][]beatEntry
	// next is the first tick not yet handled; deadlines are never placed
	// before it.
	next    int64
	pending int
	timer   *time.Timer // armed while pending > 0
	armed   bool
	// fire is called for every deadline reached, one after another on the
	// goroutine advancing the wheel, so it must not block. A goroutine per
	// deadline, as a Go timer each would use, costs a stack each when
	// thousands of sessions that connected together are pinged together.
	fire func(s *Session, at int64)
}

type beatEntry struct {
	s  *Session
	at int64 // the tick the deadline falls in
}

// beatTick is the wheel's resolution for a node's heartbeat settings: a
// sixteenth of the shortest delay it schedules, between 1 ms and 100 ms.
func beatTick(cfg Config) time.Duration {
	shortest := min(cfg.ConnectTimeout, cfg.PongTimeout, cfg.PingInterval-cfg.PongTimeout)
	return min(max(shortest/16, time.Millisecond), 100*time.Millisecond)
}

func newBeatWheel(tick time.Duration, fire func(s *Session, at int64)) *beatWheel {
	return &beatWheel{tick: tick, origin: time.Now(), next: 1, fire: fire}
}

// schedule places s's deadline d from now and returns its tick, which the
// caller keeps (under s's lock) to cancel it or to recognise its firing.
func (w *beatWheel) schedule(s *Session, d time.Duration) int64 {
	// Rounded up, so a deadline never fires early.
	at := int64((time.Since(w.origin) + d + w.tick - 1) / w.tick)
	w.mu.Lock()
	defer w.mu.Unlock()
	at = max(at, w.next)
	slot := &w.slots[at%beatSlots]
	*slot = append(*slot, beatEntry{s: s, at: at})
	w.pending++
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.tick, w.advance)
		} else {
			w.timer.Reset(w.tick)
		}
	}
	return at
}

// cancel removes s's deadline at tick at, if it is still pending.
func (w *beatWheel) cancel(s *Session, at int64) {
	if at == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	slot := &w.slots[at%beatSlots]
	for i, e := range *slot {
		if e.s == s && e.at == at {
			w.removeLocked(slot, i)
			return
		}
	}
}

// removeLocked takes entry i out of slot, giving the slot's memory back
// once it is empty.
func (w *beatWheel) removeLocked(slot *[]beatEntry, i int) {
	entries := *slot
	last := len(entries) - 1
	entries[i] = entries[last]
	entries[last] = beatEntry{}
	if last == 0 {
		*slot = nil
	} else {
		*slot = entries[:last]
	}
	w.pending--
}

// advance handles every tick up to now and fires the deadlines reached.
func (w *beatWheel) advance() {
	now := int64(time.Since(w.origin) / w.tick)
	var due []beatEntry
	w.mu.Lock()
	// After a stall of a whole round or more, one pass over every slot
	// finds everything due.
	span := min(now-w.next+1, beatSlots)
	for t := w.next; t < w.next+span; t++ {
		slot := &w.slots[t%beatSlots]
		for i := 0; i < len(*slot); {
			if e := (*slot)[i]; e.at <= now {
				due = append(due, e)
				w.removeLocked(slot, i)
				continue
			}
			i++
		}
	}
	w.next = max(w.next, now+1)
	if w.pending > 0 {
		// To the start of the next tick, so the ring keeps to the clock.
		w.timer.Reset(time.Duration(w.next)*w.tick - time.Since(w.origin))
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for _, e := range due {
		w.fire(e.s, e.at)
	}
}
