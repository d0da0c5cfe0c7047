package memory

import "crypto/rand"

// epochAlphabet has 32 symbols so each random byte maps to one without bias.
const epochAlphabet = "0123456789abcdefghijklmnopqrstuv"

// newEpoch returns a random 8-character alphanumeric epoch (40 bits). Epochs
// are only compared within one channel, so this makes a repeat after history
// loss (a restart, here) vanishingly unlikely while keeping positions short.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	for i := range b {
		b[i] = epochAlphabet[b[i]&31]
	}
	return string(b[:])
}
