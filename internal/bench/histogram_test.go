package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1 << 46} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucket of %d is %d, below the previous %d", v, i, prev)
		}
		prev = i
		low, width := bucketRange(i)
		if v < low || v >= low+width {
			t.Errorf("%d in bucket %d = [%d, %d)", v, i, low, low+width)
		}
		if width > 1 && float64(width)/float64(low) > 1.0/histSub+1e-9 {
			t.Errorf("bucket %d is %d wide at %d: coarser than 1/%d", i, width, low, histSub)
		}
	}
	if bucketOf(1<<62) != histBuckets-1 {
		t.Errorf("a huge value is not in the last bucket")
	}
}

// Quantiles agree with an exact sorted sample within the bucket precision.
func TestQuantilesMatchSortedSample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	sample := make([]time.Duration, 100_000)
	for i := range sample {
		d := time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
		sample[i] = d
		h.Record(d)
	}
	slices.Sort(sample)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := sample[int(q*float64(len(sample)))-1]
		got := h.Quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%v: %v, exact %v", q, got, exact)
		}
	}
	if h.Max() != sample[len(sample)-1] || h.Count() != uint64(len(sample)) {
		t.Errorf("max %v count %d, want %v and %d", h.Max(), h.Count(), sample[len(sample)-1], len(sample))
	}
}

// Histograms sent as data and merged equal one histogram of all values.
func TestHistogramMergeThroughData(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.MergeData(a.Data())
	m.MergeData(b.Data())
	if m.Count() != all.Count() || m.Max() != all.Max() || m.Percentiles() != all.Percentiles() {
		t.Errorf("merged %d/%v/%+v, want %d/%v/%+v", m.Count(), m.Max(), m.Percentiles(), all.Count(), all.Max(), all.Percentiles())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Percentiles() != (Percentiles{}) {
		t.Error("an empty histogram reports values")
	}
}
