package node

import (
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

// firings records what a wheel fired, and when.
type firings struct {
	mu  sync.Mutex
	got map[*Session][]time.Time
}

func (f *firings) fire(s *Session, _ int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[s] = append(f.got[s], time.Now())
}

func (f *firings) of(s *Session) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.got[s]...)
}

func newTestWheel(tick time.Duration) (*beatWheel, *firings) {
	f := &firings{got: make(map[*Session][]time.Time)}
	return newBeatWheel(tick, f.fire), f
}

func (w *beatWheel) state() (pending int, armed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending, w.armed
}

// Every deadline fires once, never before it is due, including one further
// away than a round of the ring, whose slot the wheel passes first a round
// early.
func TestBeatWheelFiresOnceNotEarly(t *testing.T) {
	w, f := newTestWheel(time.Millisecond)
	delays := []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 40 * time.Millisecond, beatSlots*time.Millisecond + 300*time.Millisecond}
	sessions := make([]*Session, len(delays))
	due := make([]time.Time, len(delays))
	for i, d := range delays {
		sessions[i] = &Session{}
		due[i] = time.Now().Add(d)
		w.schedule(sessions[i], d)
	}
	testkit.WaitFor(t, 20*time.Second, "every deadline to fire", func() bool {
		for _, s := range sessions {
			if len(f.of(s)) == 0 {
				return false
			}
		}
		return true
	})
	for i, s := range sessions {
		got := f.of(s)
		if len(got) != 1 {
			t.Errorf("deadline %v fired %d times", delays[i], len(got))
		}
		if got[0].Before(due[i]) {
			t.Errorf("deadline %v fired %v early", delays[i], due[i].Sub(got[0]))
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the wheel to disarm", func() bool {
		pending, armed := w.state()
		return pending == 0 && !armed
	})
}

// A cancelled deadline is gone at once and never fires; the wheel stays
// armed only for what is left.
func TestBeatWheelCancel(t *testing.T) {
	w, f := newTestWheel(time.Millisecond)
	cancelled, kept := &Session{}, &Session{}
	at := w.schedule(cancelled, 20*time.Millisecond)
	w.schedule(kept, 60*time.Millisecond)
	w.cancel(cancelled, at)
	if pending, _ := w.state(); pending != 1 {
		t.Fatalf("%d deadlines pending after a cancel, want 1", pending)
	}
	// Cancelling what is no longer there changes nothing.
	w.cancel(cancelled, at)
	w.cancel(kept, at)
	if pending, _ := w.state(); pending != 1 {
		t.Fatalf("%d deadlines pending after stale cancels, want 1", pending)
	}
	testkit.WaitFor(t, 10*time.Second, "the kept deadline to fire", func() bool { return len(f.of(kept)) == 1 })
	testkit.WaitFor(t, 5*time.Second, "the wheel to disarm", func() bool {
		pending, armed := w.state()
		return pending == 0 && !armed
	})
	if got := f.of(cancelled); len(got) != 0 {
		t.Errorf("the cancelled deadline fired %d times", len(got))
	}
}

// A session's heartbeat ignores a firing of a deadline it has moved since
// the wheel took it: only the current one advances the heartbeat.
func TestStaleBeatIsIgnored(t *testing.T) {
	n := newTestNode(t, Config{PingInterval: time.Hour, PongTimeout: time.Minute, ConnectTimeout: time.Hour})
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	p.s.mu.Lock()
	stale := p.s.beatAt
	p.s.rearmLocked(2 * time.Hour)
	current := p.s.beatAt
	p.s.mu.Unlock()
	if stale == current {
		t.Fatalf("rearming kept tick %d", current)
	}
	p.s.onBeat(stale)
	p.s.mu.Lock()
	beat, at := p.s.beat, p.s.beatAt
	p.s.mu.Unlock()
	if beat != beatConnecting || at != current {
		t.Fatalf("after a stale firing: phase %d at tick %d, want %d at %d", beat, at, beatConnecting, current)
	}
	if d := p.disconnect(); d != nil {
		t.Fatalf("a stale connect deadline closed the session: %+v", d)
	}
}

func TestBeatTick(t *testing.T) {
	for _, c := range []struct {
		connect, ping, pong time.Duration
		want                time.Duration
	}{
		{10 * time.Second, 25 * time.Second, 10 * time.Second, 100 * time.Millisecond},
		{time.Second, 25 * time.Second, 10 * time.Second, 62500 * time.Microsecond},
		{20 * time.Millisecond, 30 * time.Millisecond, 20 * time.Millisecond, time.Millisecond},
	} {
		got := beatTick(Config{ConnectTimeout: c.connect, PingInterval: c.ping, PongTimeout: c.pong})
		if got != c.want {
			t.Errorf("connect %v, ping %v, pong %v: tick %v, want %v", c.connect, c.ping, c.pong, got, c.want)
		}
	}
}
