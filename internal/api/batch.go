package api

import (
	"context"
	"sync"

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
// request order, one after another; different channels proceed in parallel
// (bounded), which lets the durable engine share disk syncs among them.
func (h *Handler) batch(ctx context.Context, req *BatchRequest) (any, error) {
	if len(req.Publications) == 0 {
		return nil, protocol.ErrBadRequest.With("publications required")
	}
	if len(req.Publications) > MaxBatchPublications {
		return nil, protocol.ErrLimitExceeded.With("at most %d publications per batch", MaxBatchPublications)
	}
	byChannel := make(map[string][]int)
	var order []string
	for i, p := range req.Publications {
		if _, ok := byChannel[p.Channel]; !ok {
			order = append(order, p.Channel)
		}
		byChannel[p.Channel] = append(byChannel[p.Channel], i)
	}
	out := BatchResult{Results: make([]BatchOutcome, len(req.Publications))}
	sem := make(chan struct{}, broadcastParallelism)
	var wg sync.WaitGroup
	for _, ch := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, i := range byChannel[ch] {
				res, err := h.node.Publish(ctx, req.Publications[i])
				if err != nil {
					out.Results[i].Error = protocol.AsError(err)
				} else {
					out.Results[i].PublishResult = &res
				}
			}
		})
	}
	wg.Wait()
	return out, nil
}
