package durable

import "crypto/rand"

// epochAlphabet has 32 symbols so each random byte maps to one without bias.
const epochAlphabet = "0123456789abcdefghijklmnopqrstuv"

// newEpoch returns a random 8-character alphanumeric epoch (40 bits). It is
// drawn when a channel is first used and persisted with its meta, so it lasts
// as long as the store, and a wiped store draws a different one: positions
// from lost history are then reported as unrecoverable, never resumed.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	for i := range b {
		b[i] = epochAlphabet[b[i]&31]
	}
	return string(b[:])
}
