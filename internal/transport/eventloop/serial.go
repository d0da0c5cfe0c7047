package eventloop

import "sync/atomic"

// turnsInARow bounds how many turns one Serial runs before it yields its
// worker, so a connection that is woken all along cannot starve the others.
const turnsInARow = 4

// Serial states.
const (
	serialIdle    uint32 = iota
	serialQueued         // submitted, not started
	serialRunning        // running; no Schedule since the turn started
	serialAgain          // running, and scheduled since: run once more
)

// Serial runs one connection's work on a Pool, one turn at a time: a
// Schedule that comes while a turn runs makes another turn follow, so no
// wake-up is lost and no two turns overlap. Schedule never blocks and takes
// no lock, so it is safe on the fan-out path. Set it up with Init before the
// first Schedule.
type Serial struct {
	pool  *Pool
	turn  func()
	state atomic.Uint32
}

// Init makes s run turn on pool.
func (s *Serial) Init(pool *Pool, turn func()) {
	s.pool, s.turn = pool, turn
}

// Schedule makes sure a turn starts after this call.
func (s *Serial) Schedule() {
	for {
		switch s.state.Load() {
		case serialIdle:
			if s.state.CompareAndSwap(serialIdle, serialQueued) {
				s.pool.Submit(s)
				return
			}
		case serialRunning:
			if s.state.CompareAndSwap(serialRunning, serialAgain) {
				return
			}
		default: // queued, or already due to run again
			return
		}
	}
}

// Run is the pool job: turns until none is due, at most turnsInARow before
// requeueing behind the other connections.
func (s *Serial) Run() {
	for i := 0; ; i++ {
		if i == turnsInARow {
			s.state.Store(serialQueued)
			s.pool.Submit(s)
			return
		}
		s.state.Store(serialRunning)
		s.turn()
		if s.state.CompareAndSwap(serialRunning, serialIdle) {
			return
		}
	}
}
