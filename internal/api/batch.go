package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// MaxBatchPublications bounds the publications of one batch call.
const MaxBatchPublications = 1000

// BatchRequest publishes many publications, each to its own channel, in one
// call: what a backend fanning events out to many channels sends instead of
// one request per publication.
type BatchRequest struct {
	Publications []protocol.PublishRequest `json:"publications"`
}

// BatchResult lists one outcome per publication, in request order.
type BatchResult struct {
	Results []BatchOutcome `json:"results"`
}

// BatchOutcome is one publication's result ("offset", "epoch") or "error".
type BatchOutcome struct {
	*protocol.PublishResult
	Error *protocol.Error `json:"error,omitempty"`
}

// batch publishes every publication independently, so one failure does not
// stop the others. Publications to the same channel are published in
// request order, one after another; different channels may proceed in
// parallel (publishChannels). Channels are chained through the request's
// indexes rather than gathered in a slice each: a batch of hundreds of
// channels allocates a handful of objects, not hundreds.
func (h *Handler) batch(ctx context.Context, req *BatchRequest) (any, error) {
	pubs := req.Publications
	if len(pubs) == 0 {
		return nil, protocol.ErrBadRequest.With("publications required")
	}
	if len(pubs) > MaxBatchPublications {
		return nil, protocol.ErrLimitExceeded.With("at most %d publications per batch", MaxBatchPublications)
	}
	// heads lists each channel's first publication; next[i] is the index
	// of the channel's publication after i, or -1.
	next := make([]int, len(pubs))
	last := make(map[string]int, len(pubs))
	heads := make([]int, 0, len(pubs))
	for i, p := range pubs {
		next[i] = -1
		if j, ok := last[p.Channel]; ok {
			next[j] = i
		} else {
			heads = append(heads, i)
		}
		last[p.Channel] = i
	}
	out := BatchResult{Results: make([]BatchOutcome, len(pubs))}
	publishChannel := func(head int) {
		for i := head; i >= 0; i = next[i] {
			res, err := h.node.Publish(ctx, pubs[i])
			if err != nil {
				out.Results[i].Error = protocol.AsError(err)
			} else {
				out.Results[i].PublishResult = &res
			}
		}
	}
	publishChannels(len(heads), func(c int) { publishChannel(heads[c]) })
	return out, nil
}

// publishChannels calls publish for channels 0 to n-1, which are
// independent of each other. Helper goroutines, at most
// publishParallelism-1 of them taking channels in turn rather than one
// goroutine per channel, start only once a channel's publishing proves slow
// (slowPublish): a disk sync or a broker round trip then overlaps with the
// others', and the durable engine shares syncs among them. An engine that
// answers in microseconds (memory) is faster on the calling goroutine alone,
// and the answer then never waits for the slowest of several goroutines to
// be scheduled, which on a busy machine is what a call's tail latency was
// made of.
func publishChannels(n int, publish func(channel int)) {
	var taken atomic.Int64
	next := func() int { return int(taken.Add(1) - 1) }
	work := func() {
		for c := next(); c < n; c = next() {
			publish(c)
		}
	}
	var wg sync.WaitGroup
	helpers := min(publishParallelism, n) - 1
	for c := next(); c < n; c = next() {
		began := time.Now()
		publish(c)
		if helpers > 0 && time.Since(began) >= slowPublish {
			for range helpers {
				wg.Go(work)
			}
			helpers = 0
		}
	}
	wg.Wait()
}

// publishParallelism bounds the publishes one broadcast or batch call runs
// at a time: it hides per-publish latency (a disk sync for the durable
// engine) without letting one call occupy the engine.
const publishParallelism = 8

// slowPublish is how long publishing one channel's share of a call may take
// before publishChannels starts helpers: far above an in-memory publish (a
// few microseconds), far below a disk sync or a broker round trip.
const slowPublish = 100 * time.Microsecond
