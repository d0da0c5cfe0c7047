package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// PublishOption modifies a Publish call.
type PublishOption func(*publishOptions)

type publishOptions struct {
	idempotencyKey string
	ephemeral      bool
	tags           map[string]string
}

// WithIdempotencyKey makes a retried publish safe: the server stores a
// publication once per key (within its idempotency_ttl, 5 minutes by
// default) and answers repeats with the first result. Keys are at most 128
// bytes.
func WithIdempotencyKey(key string) PublishOption {
	return func(o *publishOptions) { o.idempotencyKey = key }
}

// Ephemeral publishes without storing: the publication reaches current
// subscribers only, is never recovered, and has offset 0 (typing
// indicators, cursor moves).
func Ephemeral() PublishOption {
	return func(o *publishOptions) { o.ephemeral = true }
}

// WithTags attaches string tags to the publication (at most 32, 4 KiB).
func WithTags(tags map[string]string) PublishOption {
	return func(o *publishOptions) { o.tags = tags }
}

// Publish publishes data, which must be a JSON value, to channel, and
// returns where the server stored it. The namespace must allow clients to
// publish. On WebSocket it waits for the connection if the client is
// connecting; on SSE and polling it is an HTTP request (POST /publish).
func (c *Client) Publish(ctx context.Context, channel string, data []byte, opts ...PublishOption) (PublishResult, error) {
	compact, err := compactJSON(data)
	if err != nil {
		return PublishResult{}, err
	}
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	req := protocol.PublishRequest{Channel: channel, Data: compact, Ephemeral: o.ephemeral, IdempotencyKey: o.idempotencyKey, Tags: o.tags}
	var res protocol.PublishResult
	if err := c.command(ctx, protocol.MethodPublish, &req, &res); err != nil {
		return PublishResult{}, err
	}
	return PublishResult{Offset: res.Offset, Epoch: res.Epoch}, nil
}

// History reads publications from channel's history; the namespace must
// allow clients to read it.
func (c *Client) History(ctx context.Context, channel string, opts HistoryOptions) (HistoryResult, error) {
	req := protocol.HistoryRequest{Channel: channel, Limit: opts.Limit, Reverse: opts.Reverse}
	if opts.Since != nil {
		req.Since = &protocol.StreamPosition{Epoch: opts.Since.Epoch, Offset: opts.Since.Offset}
	}
	var res struct {
		Publications []wirePublication `json:"publications"`
		Epoch        string            `json:"epoch"`
		Offset       uint64            `json:"offset"`
	}
	if err := c.command(ctx, protocol.MethodHistory, &req, &res); err != nil {
		return HistoryResult{}, err
	}
	out := HistoryResult{Position: StreamPosition{Epoch: res.Epoch, Offset: res.Offset}}
	out.Publications = make([]Publication, len(res.Publications))
	for i := range res.Publications {
		out.Publications[i] = res.Publications[i].publication(res.Epoch)
	}
	return out, nil
}

// Presence lists channel's subscribed clients by client id; the namespace
// must keep presence and allow clients to read it.
func (c *Client) Presence(ctx context.Context, channel string) (map[string]ClientInfo, error) {
	var res struct {
		Clients map[string]ClientInfo `json:"clients"`
	}
	if err := c.command(ctx, protocol.MethodPresence, &protocol.PresenceRequest{Channel: channel}, &res); err != nil {
		return nil, err
	}
	if res.Clients == nil {
		res.Clients = map[string]ClientInfo{}
	}
	return res.Clients, nil
}

// PresenceStats counts channel's subscribed clients and users.
func (c *Client) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	var res protocol.PresenceStatsResult
	if err := c.command(ctx, protocol.MethodPresenceStats, &protocol.PresenceRequest{Channel: channel}, &res); err != nil {
		return PresenceStats{}, err
	}
	return PresenceStats{NumClients: res.NumClients, NumUsers: res.NumUsers}, nil
}

// command runs a command once the client may send it.
func (c *Client) command(ctx context.Context, method string, params, out any) error {
	if err := c.commandState(ctx, c.cfg.Transport.bidirectional()); err != nil {
		return err
	}
	err := c.tr.call(ctx, method, params, out)
	if err != nil && c.State() == StateClosed {
		return ErrClosed
	}
	return err
}

// wirePublication is a publication as the server encodes it, in pushes,
// SSE events, poll answers and history.
type wirePublication struct {
	Channel string            `json:"channel"`
	Offset  uint64            `json:"offset"`
	Data    json.RawMessage   `json:"data"`
	Info    *ClientInfo       `json:"info,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Time    int64             `json:"time"`
}

func (w *wirePublication) publication(epoch string) Publication {
	p := Publication{Channel: w.Channel, Offset: w.Offset, Data: w.Data, Info: w.Info, Tags: w.Tags, Time: time.UnixMilli(w.Time)}
	if w.Offset > 0 {
		p.Epoch = epoch
	}
	return p
}

// compactJSON validates data as one JSON value and removes insignificant
// whitespace. Commands travel in newline-separated frames, so data must not
// carry a raw newline; and invalid JSON in a frame would make the server
// drop the whole connection rather than fail one command.
func compactJSON(data []byte) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, fmt.Errorf("client: data is not valid JSON: %w", err)
	}
	if b.Len() == 0 {
		return nil, fmt.Errorf("client: data is empty")
	}
	return b.Bytes(), nil
}
