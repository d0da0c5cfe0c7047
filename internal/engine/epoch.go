package engine

import "crypto/rand"

// epochAlphabet has 32 symbols so each random byte maps to one without bias.
const epochAlphabet = "0123456789abcdefghijklmnopqrstuv"

// NewEpoch returns a random 8-character alphanumeric epoch (40 bits) for an
// engine to give a channel whose history starts anew. Epochs are compared
// only within one channel, so 40 bits make a repeat after history loss
// vanishingly unlikely while keeping positions short.
func NewEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	for i := range b {
		b[i] = epochAlphabet[b[i]&31]
	}
	return string(b[:])
}
