package redis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// defaultIdempotencyTTL applies when a publish sets IdempotencyKey but no
// IdempotencyTTL: a key the caller bothered to send should protect a retry.
const defaultIdempotencyTTL = time.Minute

// Publish stores data when opts.HistorySize > 0 and publishes it to every
// subscribed node, in one script run: the offset, the history append and
// the publish are atomic, so every node sees a channel's publications in
// offset order. It returns once Redis has done all of it (see the package
// documentation for what that means for durability).
func (e *Engine) Publish(ctx context.Context, channel string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	if err := e.check(ctx, channel); err != nil {
		return protocol.StreamPosition{}, err
	}
	keys := e.keys(channel)
	payload := encodePayload(data, opts.Info, opts.Tags)
	if opts.HistorySize <= 0 && opts.IdempotencyKey == "" {
		// Nothing to store or remember: one publish, no script.
		msg := publicationHeader(0, "", time.Now().UnixMilli()) + rueidis.BinaryString(payload)
		if err := e.client.Do(ctx, e.publishCommand(keys.pubsub(), msg)).Error(); err != nil {
			return protocol.StreamPosition{}, e.wrap(err, "publish to %s", channel)
		}
		return protocol.StreamPosition{}, nil
	}
	redisKeys := []string{keys.meta(), keys.history()}
	idemTTL := opts.IdempotencyTTL
	if opts.IdempotencyKey != "" {
		redisKeys = append(redisKeys, keys.idempotency(opts.IdempotencyKey))
		if idemTTL <= 0 {
			idemTTL = defaultIdempotencyTTL
		}
	}
	cmd := "PUBLISH"
	if e.sharded {
		cmd = "SPUBLISH"
	}
	args := []string{
		rueidis.BinaryString(payload),
		strconv.Itoa(max(opts.HistorySize, 0)),
		millis(opts.HistoryTTL),
		millis(idemTTL),
		engine.NewEpoch(),
		millis(e.cfg.HistoryMetaTTL),
		keys.pubsub(),
		cmd,
	}
	res, err := e.publishScript.Exec(ctx, e.client, redisKeys, args).ToArray()
	if err != nil {
		return protocol.StreamPosition{}, e.wrap(err, "publish to %s", channel)
	}
	if len(res) != 2 {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish to %s: script returned %d values, want 2", channel, len(res))
	}
	offset, err := res[0].AsInt64()
	if err != nil {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish to %s: offset: %w", channel, err)
	}
	epoch, err := res[1].ToString()
	if err != nil {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish to %s: epoch: %w", channel, err)
	}
	return protocol.StreamPosition{Epoch: epoch, Offset: uint64(offset)}, nil
}

// publishCommand publishes msg on the pub/sub channel name.
func (e *Engine) publishCommand(name, msg string) rueidis.Completed {
	if e.sharded {
		return e.client.B().Spublish().Channel(name).Message(msg).Build()
	}
	return e.client.B().Publish().Channel(name).Message(msg).Build()
}

// History reads the channel's unexpired publications and its position in
// one script run. A channel without meta (never used, expired, or lost with
// Redis's data) gets a new epoch.
func (e *Engine) History(ctx context.Context, channel string, q engine.HistoryQuery) (engine.HistoryResult, error) {
	if err := e.check(ctx, channel); err != nil {
		return engine.HistoryResult{}, err
	}
	keys := e.keys(channel)
	limit := max(q.Limit, -1)
	// Stream ids are offsets, so the range is computed here: the script
	// only pages through it.
	cmd, from, to := "XRANGE", "-", "+"
	if q.Reverse {
		cmd, from, to = "XREVRANGE", "+", "-"
	}
	if since := q.Since; since != nil && limit != 0 {
		switch {
		case q.Reverse && since.Offset <= 1, !q.Reverse && since.Offset == math.MaxUint64:
			limit = 0 // nothing can lie beyond: read the position only
		case q.Reverse:
			from = strconv.FormatUint(since.Offset-1, 10) + "-0"
		default:
			from = strconv.FormatUint(since.Offset+1, 10) + "-0"
		}
	}
	args := []string{engine.NewEpoch(), millis(e.cfg.HistoryMetaTTL), strconv.Itoa(limit), cmd, from, to}
	res, err := e.historyScript.Exec(ctx, e.client, []string{keys.meta(), keys.history()}, args).ToArray()
	if err != nil {
		return engine.HistoryResult{}, e.wrap(err, "read history of %s", channel)
	}
	out, err := decodeHistory(channel, res)
	if err != nil {
		return engine.HistoryResult{}, fmt.Errorf("redis: read history of %s: %w", channel, err)
	}
	return out, nil
}

// decodeHistory decodes the history script's reply:
// {epoch, offset, id, time, payload, id, time, payload, ...}.
func decodeHistory(channel string, res []rueidis.RedisMessage) (engine.HistoryResult, error) {
	if len(res) < 2 || len(res)%3 != 2 {
		return engine.HistoryResult{}, fmt.Errorf("script returned %d values", len(res))
	}
	var out engine.HistoryResult
	var err error
	if out.Position.Epoch, err = res[0].ToString(); err != nil {
		return out, fmt.Errorf("epoch: %w", err)
	}
	top, err := res[1].ToString()
	if err != nil {
		return out, fmt.Errorf("offset: %w", err)
	}
	if out.Position.Offset, err = strconv.ParseUint(top, 10, 64); err != nil {
		return out, fmt.Errorf("offset: %w", err)
	}
	if len(res) == 2 {
		return out, nil
	}
	out.Publications = make([]*protocol.Publication, 0, (len(res)-2)/3)
	for i := 2; i < len(res); i += 3 {
		id, _ := res[i].ToString()
		t, _ := res[i+1].ToString()
		payload, _ := res[i+2].ToString()
		offset, err := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
		if err != nil {
			return out, fmt.Errorf("entry id %q: %w", id, err)
		}
		pub := &protocol.Publication{Channel: channel, Offset: offset}
		if pub.Time, err = strconv.ParseInt(t, 10, 64); err != nil {
			return out, fmt.Errorf("entry %q time: %w", id, err)
		}
		if err := decodePayload(pub, payload); err != nil {
			return out, fmt.Errorf("entry %q: %w", id, err)
		}
		out.Publications = append(out.Publications, pub)
	}
	return out, nil
}

// RemoveHistory deletes the channel's stored publications. The meta stays,
// so the offset keeps rising afterwards and the epoch stays.
func (e *Engine) RemoveHistory(ctx context.Context, channel string) error {
	if err := e.check(ctx, channel); err != nil {
		return err
	}
	if err := e.client.Do(ctx, e.client.B().Del().Key(e.keys(channel).history()).Build()).Error(); err != nil {
		return e.wrap(err, "remove history of %s", channel)
	}
	return nil
}

// millis renders d in whole milliseconds, rounding up so a positive
// duration never becomes zero, which the scripts read as "none".
func millis(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}
