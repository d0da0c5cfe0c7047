package protocol

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPositionsRoundTrip(t *testing.T) {
	ps := []StreamPosition{{Epoch: "abc", Offset: 0}, {Epoch: "Z9", Offset: 18446744073709551615}, {Epoch: "x", Offset: 42}}
	s := FormatPositions(ps)
	if s != "abc-0.Z9-18446744073709551615.x-42" {
		t.Fatalf("format = %q", s)
	}
	got, err := ParsePositions(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ps) {
		t.Fatalf("parse = %v, want %v", got, ps)
	}
}

func TestParsePositionsRejects(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int
	}{
		{"", 1},
		{"abc-1", 2},
		{"abc-1.def-2", 1},
		{"abc", 1},
		{"-1", 1},
		{"ab c-1", 1},
		{"abc-", 1},
		{"abc-01", 1},
		{"abc--1", 1},
		{"abc-1x", 1},
		{"abc-18446744073709551616", 1},
		{strings.Repeat("a", MaxEpochLength+1) + "-1", 1},
		{strings.Repeat("a", 1000) + "-1", 1},
		{strings.Repeat("a-1.", 10) + "a-1", 10},
		{"abc-1", 0},
	} {
		if _, err := ParsePositions(tc.in, tc.n); !errors.Is(err, ErrBadPosition) {
			t.Errorf("ParsePositions(%.40q, %d) error = %v, want ErrBadPosition", tc.in, tc.n, err)
		}
	}
}

func TestCanonicalChannels(t *testing.T) {
	got := CanonicalChannels([]string{"b", "a", "b", "c:x"})
	if !slices.Equal(got, []string{"a", "b", "c:x"}) {
		t.Fatalf("got %v", got)
	}
}

func FuzzParsePositions(f *testing.F) {
	f.Add("abc-1", 1)
	f.Add("abc-1.def-22", 2)
	f.Add("a-0.b-18446744073709551615", 2)
	f.Add("-.-", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n > 1000 || n < -10 {
			return
		}
		ps, err := ParsePositions(s, n)
		if err != nil {
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("error %v does not wrap ErrBadPosition", err)
			}
			return
		}
		if len(ps) != n {
			t.Fatalf("%d positions for n=%d", len(ps), n)
		}
		for _, p := range ps {
			if !ValidEpoch(p.Epoch) {
				t.Fatalf("accepted invalid epoch %q", p.Epoch)
			}
		}
		// Whatever parses must format back to the same string: positions have
		// exactly one spelling, so an id never resumes two different places.
		if back := FormatPositions(ps); back != s {
			t.Fatalf("round trip %q -> %q", s, back)
		}
	})
}
