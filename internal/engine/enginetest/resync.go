package enginetest

import (
	"slices"
	"sync"

	"github.com/heraldrt/herald/internal/protocol"
)

// Recorder is a handler for an engine's own tests: it records
// publications with their epochs, control messages and resync calls, and
// is safe to read while the engine delivers.
type Recorder struct {
	mu       sync.Mutex
	pubs     map[string][]protocol.StreamPosition
	resyncs  map[string]int
	controls []string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{pubs: map[string][]protocol.StreamPosition{}, resyncs: map[string]int{}}
}

func (r *Recorder) HandlePublication(pub *protocol.Publication, epoch string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs[pub.Channel] = append(r.pubs[pub.Channel], protocol.StreamPosition{Epoch: epoch, Offset: pub.Offset})
}

func (r *Recorder) HandleJoin(string, protocol.ClientInfo)  {}
func (r *Recorder) HandleLeave(string, protocol.ClientInfo) {}

func (r *Recorder) HandleControl(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.controls = append(r.controls, string(data))
}

func (r *Recorder) HandleResync(channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs[channel]++
}

// Offsets lists the offsets delivered on channel, in delivery order.
func (r *Recorder) Offsets(channel string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, 0, len(r.pubs[channel]))
	for _, p := range r.pubs[channel] {
		out = append(out, p.Offset)
	}
	return out
}

// Delivered reports whether a publication at pos reached the handler on
// channel.
func (r *Recorder) Delivered(channel string, pos protocol.StreamPosition) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.pubs[channel], pos)
}

// Resyncs counts the HandleResync calls for channel.
func (r *Recorder) Resyncs(channel string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs[channel]
}

// Controls lists the control messages received, in order.
func (r *Recorder) Controls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.controls)
}
