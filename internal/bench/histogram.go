package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets, as HdrHistogram does:
// 64 linear sub-buckets per power of two, so any recorded value is known to
// within 1/64 (1.6%) of itself, in a fixed 21 KiB whatever the count.
// Recording is safe from many goroutines at once (one atomic add); merging
// adds bucket counts, so histograms from several processes combine exactly.
// The zero value is ready to use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // sub-buckets per power of two
	// histMaxShift bounds the range at 2^(histMaxShift+histSubBits+1) ns,
	// about 39 hours; longer values land in the last bucket.
	histMaxShift = 40
	histBuckets  = (histMaxShift + 2) * histSub
)

// bucketOf maps v ≥ 0 to its bucket. Values below 2·histSub have a bucket
// each; above, each power of two [2^k, 2^(k+1)) is cut into histSub equal parts.
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// bucketRange is the lowest value of bucket i and its width.
func bucketRange(i int) (low, width int64) {
	if i < 2*histSub {
		return int64(i), 1
	}
	shift := i/histSub - 1
	return int64(i%histSub+histSub) << shift, 1 << shift
}

// Record adds one value.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0 // clocks of two processes may disagree by a little
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value below which a fraction q of the values lie: the
// middle of the bucket holding that rank, never above Max. It returns 0 for
// an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, width := bucketRange(i)
			return min(time.Duration(low+width/2), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// HistogramData is a histogram as JSON: the non-empty buckets as
// [index, count] pairs, and the exact maximum in nanoseconds. Worker
// processes send their histograms to the parent in this form.
type HistogramData struct {
	Buckets [][2]uint64 `json:"buckets"`
	MaxNS   int64       `json:"max_ns"`
}

// Data returns h in its JSON form.
func (h *Histogram) Data() HistogramData {
	d := HistogramData{Buckets: [][2]uint64{}, MaxNS: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return d
}

// MergeData adds the values of d to h; buckets out of range are ignored.
func (h *Histogram) MergeData(d HistogramData) {
	for _, b := range d.Buckets {
		if b[0] < histBuckets {
			h.counts[b[0]].Add(b[1])
			h.total.Add(b[1])
		}
	}
	if d.MaxNS > h.max.Load() {
		h.max.Store(d.MaxNS)
	}
}

// Percentiles summarises a histogram in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Percentiles returns h's summary.
func (h *Histogram) Percentiles() Percentiles {
	return Percentiles{
		P50:  ms(h.Quantile(0.50)),
		P90:  ms(h.Quantile(0.90)),
		P99:  ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)),
		Max:  ms(h.Max()),
	}
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}
