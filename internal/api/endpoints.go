package api

import (
	"context"
	"encoding/json"
	"path"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// MaxBroadcastChannels bounds the channels of one broadcast call.
const MaxBroadcastChannels = 1000

// publish: protocol.PublishRequest → protocol.PublishResult.
func (h *Handler) publish(ctx context.Context, req *protocol.PublishRequest) (any, error) {
	return h.node.Publish(ctx, *req)
}

// BroadcastRequest publishes the same data to several channels.
type BroadcastRequest struct {
	Channels       []string          `json:"channels"`
	Data           json.RawMessage   `json:"data"`
	Ephemeral      bool              `json:"ephemeral,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// BroadcastResult lists one outcome per requested channel, in request order.
type BroadcastResult struct {
	Results []BroadcastOutcome `json:"results"`
}

// BroadcastOutcome is one channel's publish result or error: the JSON
// object holds "offset" and "epoch" on success and "error" on failure.
type BroadcastOutcome struct {
	Channel string `json:"channel"`
	*protocol.PublishResult
	Error *protocol.Error `json:"error,omitempty"`
}

// broadcast publishes to every channel independently: one channel's failure
// (a bad name, a full engine) does not stop the others, and each outcome is
// reported. A request that cannot succeed anywhere (no channels, bad data)
// fails as a whole.
func (h *Handler) broadcast(ctx context.Context, req *BroadcastRequest) (any, error) {
	if len(req.Channels) == 0 {
		return nil, protocol.ErrBadRequest.With("channels required")
	}
	if len(req.Channels) > MaxBroadcastChannels {
		return nil, protocol.ErrLimitExceeded.With("at most %d channels per broadcast", MaxBroadcastChannels)
	}
	seen := make(map[string]bool, len(req.Channels))
	for _, ch := range req.Channels {
		if seen[ch] {
			return nil, protocol.ErrBadRequest.With("channel %q listed twice", truncate(ch, 64))
		}
		seen[ch] = true
	}
	if _, err := protocol.NormalizeData(req.Data); err != nil {
		return nil, err
	}
	out := BroadcastResult{Results: make([]BroadcastOutcome, len(req.Channels))}
	publishChannels(len(req.Channels), func(i int) {
		ch := req.Channels[i]
		res, err := h.node.Publish(ctx, protocol.PublishRequest{
			Channel:        ch,
			Data:           req.Data,
			Ephemeral:      req.Ephemeral,
			IdempotencyKey: req.IdempotencyKey,
			Tags:           req.Tags,
		})
		out.Results[i] = BroadcastOutcome{Channel: ch}
		if err != nil {
			out.Results[i].Error = protocol.AsError(err)
		} else {
			out.Results[i].PublishResult = &res
		}
	})
	return out, nil
}

// history: protocol.HistoryRequest → protocol.HistoryResult.
func (h *Handler) history(ctx context.Context, req *protocol.HistoryRequest) (any, error) {
	return h.node.History(ctx, *req)
}

// ChannelsRequest filters the channels call. Pattern is a path.Match glob
// ("chat:*"); empty matches every channel. As in path.Match, '*' does not
// match '/'.
type ChannelsRequest struct {
	Pattern string `json:"pattern,omitempty"`
}

// ChannelsResult maps each channel with subscribers on this node to its stats.
type ChannelsResult struct {
	Channels map[string]ChannelStats `json:"channels"`
}

// ChannelStats describes one channel.
type ChannelStats struct {
	NumSubscribers int `json:"num_subscribers"`
}

func (h *Handler) channels(_ context.Context, req *ChannelsRequest) (any, error) {
	if _, err := path.Match(req.Pattern, ""); err != nil {
		return nil, protocol.ErrBadRequest.With("pattern %q: %v", truncate(req.Pattern, 64), err)
	}
	out := ChannelsResult{Channels: make(map[string]ChannelStats)}
	for ch, n := range h.node.Channels() {
		if req.Pattern != "" {
			if ok, _ := path.Match(req.Pattern, ch); !ok {
				continue
			}
		}
		out.Channels[ch] = ChannelStats{NumSubscribers: n}
	}
	return out, nil
}

// InfoRequest takes no parameters; it exists so that unknown fields are
// rejected like everywhere else.
type InfoRequest struct{}

// InfoResult describes every live node of the cluster, as known from their
// heartbeats on the engine's control bus.
type InfoResult struct {
	// Node is the id of the node that answered.
	Node  string      `json:"node"`
	Nodes []node.Info `json:"nodes"`
}

func (h *Handler) info(context.Context, *InfoRequest) (any, error) {
	return InfoResult{Node: h.node.ID(), Nodes: h.node.Nodes()}, nil
}

// presence: protocol.PresenceRequest → protocol.PresenceResult.
func (h *Handler) presence(ctx context.Context, req *protocol.PresenceRequest) (any, error) {
	clients, err := h.node.Presence(ctx, req.Channel)
	if err != nil {
		return nil, err
	}
	if clients == nil {
		clients = map[string]protocol.ClientInfo{} // "clients": {} rather than null
	}
	return protocol.PresenceResult{Clients: clients}, nil
}

// presenceStats: protocol.PresenceRequest → protocol.PresenceStatsResult.
func (h *Handler) presenceStats(ctx context.Context, req *protocol.PresenceRequest) (any, error) {
	st, err := h.node.PresenceStats(ctx, req.Channel)
	if err != nil {
		return nil, err
	}
	return protocol.PresenceStatsResult{NumClients: st.NumClients, NumUsers: st.NumUsers}, nil
}
