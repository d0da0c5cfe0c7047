package enginetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

// delivered is one HandlePublication call.
type delivered struct {
	pub   *protocol.Publication
	epoch string
}

// recorder is the engine.Handler the suite starts engines with. It records
// every call and checks the Handler contract as calls happen: one call at a
// time per channel, stored publications in increasing offset order, an epoch
// exactly when the offset is not zero.
type recorder struct {
	mu       sync.Mutex
	pubs     map[string][]delivered
	joins    map[string][]protocol.ClientInfo
	leaves   map[string][]protocol.ClientInfo
	controls []string
	busy     map[string]bool   // channels with a call in progress
	last     map[string]uint64 // last stored offset delivered per channel
	problems []string
}

func newRecorder() *recorder {
	return &recorder{
		pubs:   make(map[string][]delivered),
		joins:  make(map[string][]protocol.ClientInfo),
		leaves: make(map[string][]protocol.ClientInfo),
		busy:   make(map[string]bool),
		last:   make(map[string]uint64),
	}
}

// enter marks a call for channel as in progress, noting overlapping calls.
func (r *recorder) enter(channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[channel] {
		r.problems = append(r.problems, fmt.Sprintf("concurrent handler calls for channel %s", channel))
	}
	r.busy[channel] = true
}

func (r *recorder) exit(channel string) {
	r.mu.Lock()
	r.busy[channel] = false
	r.mu.Unlock()
}

func (r *recorder) HandlePublication(pub *protocol.Publication, epoch string) {
	r.enter(pub.Channel)
	defer r.exit(pub.Channel)
	r.mu.Lock()
	defer r.mu.Unlock()
	if pub.Offset == 0 && epoch != "" {
		r.problems = append(r.problems, fmt.Sprintf("%s: ephemeral publication with epoch %q", pub.Channel, epoch))
	}
	if pub.Offset > 0 {
		if !protocol.ValidEpoch(epoch) {
			r.problems = append(r.problems, fmt.Sprintf("%s: offset %d delivered with invalid epoch %q", pub.Channel, pub.Offset, epoch))
		}
		if last := r.last[pub.Channel]; pub.Offset <= last {
			r.problems = append(r.problems, fmt.Sprintf("%s: offset %d delivered after %d", pub.Channel, pub.Offset, last))
		}
		r.last[pub.Channel] = pub.Offset
	}
	r.pubs[pub.Channel] = append(r.pubs[pub.Channel], delivered{pub: pub, epoch: epoch})
}

func (r *recorder) HandleJoin(channel string, info protocol.ClientInfo) {
	r.enter(channel)
	defer r.exit(channel)
	r.mu.Lock()
	r.joins[channel] = append(r.joins[channel], info)
	r.mu.Unlock()
}

func (r *recorder) HandleLeave(channel string, info protocol.ClientInfo) {
	r.enter(channel)
	defer r.exit(channel)
	r.mu.Lock()
	r.leaves[channel] = append(r.leaves[channel], info)
	r.mu.Unlock()
}

func (r *recorder) HandleControl(data []byte) {
	r.mu.Lock()
	r.controls = append(r.controls, string(data))
	r.mu.Unlock()
}

// published returns the publications delivered on channel so far.
func (r *recorder) published(channel string) []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs[channel])
}

// count returns how many publications were delivered on channel.
func (r *recorder) count(channel string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pubs[channel])
}

func (r *recorder) joined(channel string) []protocol.ClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.joins[channel])
}

func (r *recorder) left(channel string) []protocol.ClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.leaves[channel])
}

func (r *recorder) controlMessages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.controls)
}

// report fails t with every contract violation seen.
func (r *recorder) report(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Errorf("handler contract: %s", p)
	}
}

// deliveredOffsets lists the offsets of ds, in order.
func deliveredOffsets(ds []delivered) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.pub.Offset
	}
	return out
}
