package turn

import (
	"net"
	"sync"
	"time"
)

// reservationTTL bounds how long a slot admitted for an allocation stays
// reserved without the allocation appearing. pion makes the allocation
// right after admitting it, on the same goroutine, so a reservation still
// pending after this long belongs to an allocation that failed in a way
// pion does not report (a zero LIFETIME, say).
const reservationTTL = 5 * time.Second

// allocations enforces the per-user allocation quota. Checking and counting
// happen together in admit, which reserves the slot: pion admits an
// allocation before making it, so a count taken only once it is made would
// let simultaneous requests of one user all pass the check.
type allocations struct {
	max int // 0: no limit
	now func() time.Time

	mu     sync.Mutex
	byUser map[string]*userAllocations
}

type userAllocations struct {
	open int
	// pending are the expiry times of the slots admitted whose allocation
	// has not been made yet, oldest first.
	pending []time.Time
}

func newAllocations(limit int) *allocations {
	return &allocations{max: limit, now: time.Now, byUser: map[string]*userAllocations{}}
}

// admit is asked before an allocation is made, with the user pion's
// authentication found; it reserves one of user's slots, if one is free.
func (a *allocations) admit(user, _ string, _ net.Addr) bool {
	if a.max <= 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.byUser[user]
	if u == nil {
		u = &userAllocations{}
		a.byUser[user] = u
	}
	now := a.now()
	for len(u.pending) > 0 && !now.Before(u.pending[0]) {
		u.pending = u.pending[1:]
	}
	if u.open+len(u.pending) >= a.max {
		a.forgetLocked(user, u)
		return false
	}
	u.pending = append(u.pending, now.Add(reservationTTL))
	return true
}

// created turns one of user's reservations into an open allocation.
func (a *allocations) created(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) {
	if a.max <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.byUser[user]
	if u == nil {
		// Its reservation expired and was forgotten; count it all the same.
		u = &userAllocations{}
		a.byUser[user] = u
	}
	if len(u.pending) > 0 {
		u.pending = u.pending[1:]
	}
	u.open++
}

// failed releases a reservation whose allocation could not be made.
func (a *allocations) failed(user string) {
	if a.max <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.byUser[user]; u != nil {
		if len(u.pending) > 0 {
			u.pending = u.pending[1:]
		}
		a.forgetLocked(user, u)
	}
}

func (a *allocations) deleted(_, _ net.Addr, _, user, _ string) {
	if a.max <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.byUser[user]; u != nil {
		if u.open > 0 {
			u.open--
		}
		a.forgetLocked(user, u)
	}
}

// forgetLocked drops user's entry once it holds nothing, so the map stays
// as small as the set of users relaying. Caller holds a.mu.
func (a *allocations) forgetLocked(user string, u *userAllocations) {
	if u.open == 0 && len(u.pending) == 0 {
		delete(a.byUser, user)
	}
}
