package bench

import (
	"context"
	"time"
)

// subscribers is the subscriber side of a run: a fleet in this process, or
// fleets in worker processes whose reports are merged.
type subscribers interface {
	// open connects every subscriber and waits until each has subscribed or
	// failed; the result has the connect counts.
	open(ctx context.Context) (FleetResult, error)
	// start begins churn, where the spec asks for it.
	start(ctx context.Context) error
	// finish stops churn, waits up to drain for the measured publications
	// counted in acked (per channel; nil when nothing was published), and
	// returns the totals.
	finish(ctx context.Context, acked []uint64, drain time.Duration) (FleetResult, error)
	// close ends every connection (and worker process).
	close()
}

// localSubscribers is a fleet in this process.
type localSubscribers struct {
	f       *fleet
	connect time.Duration
}

func newLocalSubscribers(spec FleetSpec) (*localSubscribers, error) {
	f, err := newFleet(spec)
	if err != nil {
		return nil, err
	}
	return &localSubscribers{f: f}, nil
}

func (l *localSubscribers) open(ctx context.Context) (FleetResult, error) {
	l.connect = l.f.open(ctx)
	return l.f.result(nil, l.connect), ctx.Err()
}

func (l *localSubscribers) start(ctx context.Context) error {
	l.f.startChurn(ctx)
	return nil
}

func (l *localSubscribers) finish(ctx context.Context, acked []uint64, drain time.Duration) (FleetResult, error) {
	return finishFleet(ctx, l.f, acked, drain, l.connect), nil
}

func (l *localSubscribers) close() { l.f.close() }

// finishFleet is finish for one fleet, wherever it runs.
func finishFleet(ctx context.Context, f *fleet, acked []uint64, drain time.Duration, connect time.Duration) FleetResult {
	f.stopChurn()
	if acked != nil && f.spec.ChurnRate <= 0 {
		f.drain(ctx, acked, drain)
	}
	return f.result(acked, connect)
}

// merge adds o's counts to r.
func (r *FleetResult) merge(o FleetResult) {
	r.Connected += o.Connected
	r.ConnectFailures += o.ConnectFailures
	r.ConnectSeconds = max(r.ConnectSeconds, o.ConnectSeconds)
	r.Disconnects += o.Disconnects
	r.Churned += o.Churned
	r.Deliveries += o.Deliveries
	r.Measured += o.Measured
	r.Warmup += o.Warmup
	r.Expected += o.Expected
	r.Lost += o.Lost
	r.Duplicated += o.Duplicated
	r.OutOfOrder += o.OutOfOrder
	r.RSSKiB += o.RSSKiB
	r.CPUSeconds += o.CPUSeconds
	r.ErrorCount += o.ErrorCount
	for _, e := range o.Errors {
		if len(r.Errors) < maxErrors {
			r.Errors = append(r.Errors, e)
		}
	}
	var h Histogram
	h.MergeData(r.Latency)
	h.MergeData(o.Latency)
	r.Latency = h.Data()
	var c Histogram
	c.MergeData(r.ConnectLatency)
	c.MergeData(o.ConnectLatency)
	r.ConnectLatency = c.Data()
}
