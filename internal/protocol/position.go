package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxEpochLength bounds epochs; engines generate short random ones.
const MaxEpochLength = 32

// ErrBadPosition is returned for a position string that does not parse or
// does not match the channels it is used with.
var ErrBadPosition = errors.New("bad position")

// ValidEpoch reports whether e is a well-formed epoch: 1 to MaxEpochLength
// ASCII letters and digits. Keeping epochs alphanumeric keeps positions free
// of separators, so they survive URLs and SSE id lines untouched.
func ValidEpoch(e string) bool {
	if len(e) == 0 || len(e) > MaxEpochLength {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// CanonicalChannels sorts and deduplicates channels. A multi-channel position
// lists one stream position per channel in this order, so the same set of
// channels always maps to the same layout, whatever order a URL names them in.
func CanonicalChannels(channels []string) []string {
	out := slices.Clone(channels)
	slices.Sort(out)
	return slices.Compact(out)
}

// FormatPositions encodes the positions of a canonical channel list as the
// string used in SSE event ids and in poll "since"/"next": one
// "<epoch>-<offset>" per channel, joined by ".".
func FormatPositions(ps []StreamPosition) string {
	var b strings.Builder
	b.Grow(len(ps) * 16)
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.Epoch)
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(p.Offset, 10))
	}
	return b.String()
}

// ParsePositions decodes a string made by FormatPositions for a canonical list
// of n channels. Any malformed entry, or a count other than n, is an error
// wrapping ErrBadPosition: resuming from a position meant for other channels
// would silently skip or repeat publications.
func ParsePositions(s string, n int) ([]StreamPosition, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: no channels", ErrBadPosition)
	}
	// Each entry needs at least "e-0" plus a separator; reject oversize input
	// before splitting so a hostile header cannot make us allocate much.
	if len(s) > n*(MaxEpochLength+22) {
		return nil, fmt.Errorf("%w: too long", ErrBadPosition)
	}
	parts := strings.Split(s, ".")
	if len(parts) != n {
		return nil, fmt.Errorf("%w: %d entries for %d channels", ErrBadPosition, len(parts), n)
	}
	out := make([]StreamPosition, n)
	for i, part := range parts {
		dash := strings.LastIndexByte(part, '-')
		if dash < 0 {
			return nil, fmt.Errorf("%w: entry %d has no offset", ErrBadPosition, i)
		}
		epoch, num := part[:dash], part[dash+1:]
		if !ValidEpoch(epoch) {
			return nil, fmt.Errorf("%w: entry %d has an invalid epoch", ErrBadPosition, i)
		}
		off, err := strconv.ParseUint(num, 10, 64)
		if err != nil || num == "" || (len(num) > 1 && num[0] == '0') {
			return nil, fmt.Errorf("%w: entry %d has an invalid offset", ErrBadPosition, i)
		}
		out[i] = StreamPosition{Epoch: epoch, Offset: off}
	}
	return out, nil
}
