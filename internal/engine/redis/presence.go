package redis

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// AddPresence adds or refreshes info.Client in channel for the presence TTL.
func (e *Engine) AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	args := []string{"add", info.Client, info.User, rueidis.BinaryString(encodeInfo(info)), millis(e.cfg.PresenceTTL)}
	if err := e.presenceScript.Exec(ctx, e.client, e.keys(channel).presence(), args).Error(); err != nil {
		return e.wrap(err, "add presence in %s", channel)
	}
	return nil
}

// RemovePresence removes clientID from channel.
func (e *Engine) RemovePresence(ctx context.Context, channel, clientID string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	if err := e.presenceScript.Exec(ctx, e.client, e.keys(channel).presence(), []string{"remove", clientID}).Error(); err != nil {
		return e.wrap(err, "remove presence in %s", channel)
	}
	return nil
}

// Presence returns the channel's unexpired clients by client id.
func (e *Engine) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	if err := e.check(ctx, channel); err != nil {
		return nil, err
	}
	res, err := e.presenceScript.Exec(ctx, e.client, e.keys(channel).presence(), []string{"list"}).AsStrSlice()
	if err != nil {
		return nil, e.wrap(err, "read presence of %s", channel)
	}
	out := make(map[string]protocol.ClientInfo, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		info, err := decodeInfo(res[i+1])
		if err != nil {
			return nil, fmt.Errorf("redis: read presence of %s: client %q: %w", channel, res[i], err)
		}
		out[res[i]] = info
	}
	return out, nil
}

// PresenceStats counts the channel's unexpired clients and distinct users.
// Redis counts them; the clients are not read. While more than a thousand
// expired entries of one channel wait to be dropped, users of some of them
// may still be counted.
func (e *Engine) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	if err := e.check(ctx, channel); err != nil {
		return engine.PresenceStats{}, err
	}
	res, err := e.presenceScript.Exec(ctx, e.client, e.keys(channel).presence(), []string{"stats"}).AsIntSlice()
	if err != nil {
		return engine.PresenceStats{}, e.wrap(err, "count presence of %s", channel)
	}
	if len(res) != 2 {
		return engine.PresenceStats{}, fmt.Errorf("redis: count presence of %s: script returned %d values, want 2", channel, len(res))
	}
	return engine.PresenceStats{NumClients: int(res[0]), NumUsers: int(res[1])}, nil
}

// PublishJoin delivers a join event to the nodes subscribed to channel.
func (e *Engine) PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error {
	return e.publishPresenceEvent(ctx, channel, msgJoin, info)
}

// PublishLeave delivers a leave event to the nodes subscribed to channel.
func (e *Engine) PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error {
	return e.publishPresenceEvent(ctx, channel, msgLeave, info)
}

func (e *Engine) publishPresenceEvent(ctx context.Context, channel string, kind byte, info protocol.ClientInfo) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	msg := string(kind) + rueidis.BinaryString(encodeInfo(info))
	if err := e.client.Do(ctx, e.publishCommand(e.keys(channel).pubsub(), msg)).Error(); err != nil {
		return e.wrap(err, "publish presence event to %s", channel)
	}
	return nil
}
