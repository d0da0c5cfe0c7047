package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
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

// serveBatch serves /api/batch as serve serves the other endpoints, but
// takes the call's working memory (batchCall) from h.batchCalls: at tens of
// thousands of publications a second, the decoded request, the index and
// result slices and the response buffer were most of the server API's
// garbage.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) {
	c, _ := h.batchCalls.Get().(*batchCall)
	if c == nil {
		c = new(batchCall)
	}
	defer h.releaseBatchCall(c)
	if err := decodeBody(w, r, h.maxBody, &c.req); err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	if err := h.batch(r.Context(), c); err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	enc := json.NewEncoder(&c.buf)
	enc.SetEscapeHTML(false) // as writeJSON: data reaches clients byte for byte
	if err := enc.Encode(&c.out); err != nil {
		protocol.WriteHTTPError(w, protocol.ErrInternal.With("encode response: %v", err))
		return
	}
	setJSONHeaders(w)
	_, _ = w.Write(c.buf.Bytes())
}

// batchCall is one batch call's working memory. Between calls every slot
// that can hold a pointer is zero (reset), so a pooled batchCall keeps
// nothing of the request it served alive and hands nothing of it to the
// next one.
type batchCall struct {
	req BatchRequest
	// last maps a channel to its latest publication while grouping.
	last map[string]int
	// ints backs batch's next and heads, one array for both.
	ints []int
	// published backs out.Results' PublishResult pointers: one array, not
	// one allocation per publication.
	published []protocol.PublishResult
	out       BatchResult
	buf       bytes.Buffer
}

// maxPooledResponse bounds the response buffer a pooled batchCall keeps:
// a call answering hundreds of long errors does not pin its buffer.
const maxPooledResponse = 64 << 10

// releaseBatchCall resets c and returns it to the pool, unless it grew
// beyond what a batch within the limits needs.
func (h *Handler) releaseBatchCall(c *batchCall) {
	if !c.reset() {
		return
	}
	h.batchCalls.Put(c)
}

// reset zeroes c for the next call and reports whether it is small enough
// to keep. encoding/json decodes into a reused slice element without
// zeroing it first, so a field an item omits would otherwise keep the
// previous request's value; and zeroing Data and Tags makes the decoder
// allocate them afresh, so the node and its hooks may keep what they were
// given.
func (c *batchCall) reset() bool {
	pubs := c.req.Publications
	// The whole capacity, so that no stale element depends on where the
	// decoder left the length (a failed decode stops midway).
	clear(pubs[:cap(pubs)])
	c.req = BatchRequest{Publications: pubs[:0]}
	clear(c.last)
	clear(c.published)
	clear(c.out.Results)
	c.out = BatchResult{Results: c.out.Results[:0]}
	c.buf.Reset()
	return cap(pubs) <= MaxBatchPublications && c.buf.Cap() <= maxPooledResponse
}

// batch publishes every publication of c.req independently, so one failure
// does not stop the others, into c.out. Publications to the same channel
// are published in request order, one after another; different channels
// may proceed in parallel (publishChannels). Channels are chained through
// the request's indexes rather than gathered in a slice each.
func (h *Handler) batch(ctx context.Context, c *batchCall) error {
	pubs := c.req.Publications
	n := len(pubs)
	if n == 0 {
		return protocol.ErrBadRequest.With("publications required")
	}
	if n > MaxBatchPublications {
		return protocol.ErrLimitExceeded.With("at most %d publications per batch", MaxBatchPublications)
	}
	// heads lists each channel's first publication; next[i] is the index
	// of the channel's publication after i, or -1.
	c.ints = slices.Grow(c.ints[:0], 2*n)[:2*n]
	next, heads := c.ints[:n], c.ints[n:n]
	if c.last == nil {
		c.last = make(map[string]int, n)
	}
	for i, p := range pubs {
		next[i] = -1
		if j, ok := c.last[p.Channel]; ok {
			next[j] = i
		} else {
			heads = append(heads, i)
		}
		c.last[p.Channel] = i
	}
	c.published = slices.Grow(c.published[:0], n)[:n]
	c.out.Results = slices.Grow(c.out.Results[:0], n)[:n]
	results := c.out.Results
	publishChannel := func(head int) {
		for i := head; i >= 0; i = next[i] {
			res, err := h.node.Publish(ctx, pubs[i])
			if err != nil {
				results[i].Error = protocol.AsError(err)
			} else {
				c.published[i] = res
				results[i].PublishResult = &c.published[i]
			}
		}
	}
	publishChannels(len(heads), func(ch int) { publishChannel(heads[ch]) })
	return nil
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
//
// Until then nothing is shared with another goroutine, so the common call
// allocates nothing here.
func publishChannels(n int, publish func(channel int)) {
	for c := range n {
		began := time.Now()
		publish(c)
		if c+1 < n && time.Since(began) >= slowPublish {
			spreadChannels(c+1, n, publish)
			return
		}
	}
}

// spreadChannels calls publish for channels from to n-1 on the calling
// goroutine and on up to publishParallelism-1 helpers, each taking the next
// channel not yet taken.
func spreadChannels(from, n int, publish func(channel int)) {
	var taken atomic.Int64
	taken.Store(int64(from))
	work := func() {
		for c := int(taken.Add(1) - 1); c < n; c = int(taken.Add(1) - 1) {
			publish(c)
		}
	}
	var wg sync.WaitGroup
	for range min(publishParallelism, n-from) - 1 {
		wg.Go(work)
	}
	work()
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
