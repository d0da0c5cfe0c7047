package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// maxWriteAttempts bounds how often one write may lose the race for a
// channel's next offset to other nodes before Publish gives up.
const maxWriteAttempts = 100

// maxTrimInterval caps how many publishes to a full channel pass between
// two purges of its superseded messages.
const maxTrimInterval = 64

// Publish stores data in the channel's history when opts.HistorySize > 0,
// returning once JetStream has acknowledged it, and delivers it to every
// subscribed node. See the package doc for what the acknowledgement means.
func (e *Engine) Publish(ctx context.Context, channel string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	c, err := e.client(ctx)
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	pub := &protocol.Publication{
		Channel: channel,
		Data:    data, // written to the connection before Publish returns
		Info:    opts.Info,
		Tags:    opts.Tags,
		Time:    time.Now().UnixMilli(),
	}
	if opts.IdempotencyKey != "" {
		return e.publishKeyed(ctx, c, pub, opts)
	}
	if opts.HistorySize <= 0 {
		return protocol.StreamPosition{}, e.publishEphemeral(c, pub)
	}
	pos, _, err := e.store(ctx, c, pub, opts, "")
	return pos, err
}

// publishEphemeral sends pub to the channel's subscribers without storing it.
func (e *Engine) publishEphemeral(c *conn, pub *protocol.Publication) error {
	msg := nats.NewMsg(e.names.delivery(pub.Channel))
	msg.Header[hdrKind] = []string{kindEphemeral}
	body, err := encodePublication(msg.Header, pub)
	if err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	msg.Data = body
	if err := c.nc.PublishMsg(msg); err != nil {
		return e.fail("publish", err)
	}
	return nil
}

// store appends pub to its channel's history at the next offset. With a
// msgID, JetStream may find the id already stored: store then returns the
// acknowledgement marked Duplicate, with the original's sequence, and a zero
// position for the caller to resolve.
func (e *Engine) store(ctx context.Context, c *conn, pub *protocol.Publication, opts engine.PublishOptions, msgID string) (protocol.StreamPosition, *jetstream.PubAck, error) {
	ch := e.channels.lock(pub.Channel)
	defer ch.mu.Unlock()
	subject := e.names.history(pub.Channel)
	for range maxWriteAttempts {
		if !e.channels.known(ch) {
			t, _, err := e.readTail(ctx, c, pub.Channel)
			if err != nil {
				return protocol.StreamPosition{}, nil, e.fail("publish", err)
			}
			e.channels.learn(ch, t)
		}
		prev := ch.tail
		next := tail{offset: prev.offset + 1, floor: prev.floor, epoch: prev.epoch}
		if next.epoch == "" {
			next.epoch = engine.NewEpoch()
		}
		if size := uint64(opts.HistorySize); next.offset > size {
			next.floor = max(next.floor, next.offset-size)
		}
		msg := nats.NewMsg(subject)
		setUint(msg.Header, hdrOffset, next.offset)
		msg.Header[hdrEpoch] = []string{next.epoch}
		if next.floor > 0 {
			setUint(msg.Header, hdrFloor, next.floor)
		}
		if opts.HistoryTTL > 0 {
			setUint(msg.Header, hdrExpires, uint64(pub.Time+opts.HistoryTTL.Milliseconds()))
		}
		setUint(msg.Header, hdrPrev, prev.seq)
		if msgID != "" {
			msg.Header[jetstream.MsgIDHeader] = []string{msgID}
		}
		body, err := encodePublication(msg.Header, pub)
		if err != nil {
			return protocol.StreamPosition{}, nil, fmt.Errorf("nats: publish: %w", err)
		}
		msg.Data = body

		ack, err := c.js.PublishMsg(ctx, msg)
		switch {
		case wrongLastSequence(err):
			ch.unlearn() // another node wrote first
			continue
		case err != nil:
			ch.unlearn() // the write may or may not have been stored
			return protocol.StreamPosition{}, nil, e.fail("publish", err)
		case ack.Duplicate:
			return protocol.StreamPosition{}, ack, nil
		}
		next.seq = ack.Sequence
		e.channels.learn(ch, next)
		e.trim(ctx, c, subject, next, opts.HistorySize)
		if ttl := opts.HistoryTTL.Milliseconds(); ttl > 0 {
			ch.expiry.add(ch.gen, next.seq, pub.Time+ttl, ttl)
			e.expire(ctx, c, subject, ch, time.Now().UnixMilli(), next.seq)
		}
		return protocol.StreamPosition{Epoch: next.epoch, Offset: next.offset}, ack, nil
	}
	return protocol.StreamPosition{}, nil, fmt.Errorf("nats: publish to %s: lost the race for the next offset %d times", pub.Channel, maxWriteAttempts)
}

// trim purges a full channel's messages below its floor, once every few
// publishes, keeping the newest offset-floor messages. Reads filter by the
// floor anyway, so a late or failed trim costs only storage. The purge runs
// under the channel's lock, so no write from this node lands between the
// publish and its trim; a write from another node that does is counted in
// the kept messages, which is exact unless it raised the channel's size.
// Caller must hold the channel's lock.
func (e *Engine) trim(ctx context.Context, c *conn, subject string, t tail, size int) {
	keep := t.offset - t.floor
	if size <= 0 || keep < uint64(size) || t.offset%uint64(min(size, maxTrimInterval)) != 0 {
		return
	}
	if err := c.history.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeKeep(keep)); err != nil && !e.closed.Load() {
		e.log.Warn("trim channel history", "subject", subject, "err", err)
	}
}

// RemoveHistory deletes the channel's stored publications. It stores a
// tombstone carrying the channel's offset and epoch, so both carry on, and
// purges everything before it.
func (e *Engine) RemoveHistory(ctx context.Context, channel string) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	ch := e.channels.lock(channel)
	defer ch.mu.Unlock()
	subject := e.names.history(channel)
	for range maxWriteAttempts {
		if !e.channels.known(ch) {
			t, _, err := e.readTail(ctx, c, channel)
			if err != nil {
				return e.fail("remove history", err)
			}
			e.channels.learn(ch, t)
		}
		t := ch.tail
		if t.seq == 0 || t.floor == t.offset {
			return nil // never used, or nothing retained
		}
		msg := nats.NewMsg(subject)
		msg.Header[hdrKind] = []string{kindRemoved}
		setUint(msg.Header, hdrOffset, t.offset)
		setUint(msg.Header, hdrFloor, t.offset)
		msg.Header[hdrEpoch] = []string{t.epoch}
		setUint(msg.Header, hdrPrev, t.seq)
		ack, err := c.js.PublishMsg(ctx, msg)
		if wrongLastSequence(err) {
			ch.unlearn()
			continue
		}
		if err != nil {
			ch.unlearn()
			return e.fail("remove history", err)
		}
		e.channels.learn(ch, tail{seq: ack.Sequence, offset: t.offset, floor: t.offset, epoch: t.epoch})
		// Purging by sequence, not "keep 1", spares what other nodes publish
		// after the tombstone.
		if err := c.history.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(ack.Sequence)); err != nil {
			return e.fail("remove history", err)
		}
		return nil
	}
	return fmt.Errorf("nats: remove history of %s: lost the race for the channel %d times", channel, maxWriteAttempts)
}

// readTail reads the channel's last stored message, returning it and its
// tail, or a zero tail and no message when the channel's subject holds none.
func (e *Engine) readTail(ctx context.Context, c *conn, channel string) (t tail, last *jetstream.RawStreamMsg, err error) {
	m, err := c.history.GetLastMsgForSubject(ctx, e.names.history(channel))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{}, nil, nil
	}
	if err != nil {
		return tail{}, nil, fmt.Errorf("read last message: %w", err)
	}
	en, err := parseEntry(m.Header, m.Sequence)
	if err != nil {
		return tail{}, nil, fmt.Errorf("read last message: %w", err)
	}
	return tail{seq: m.Sequence, offset: en.offset, floor: en.floor, epoch: en.epoch}, m, nil
}

// startEpoch stores an epoch marker as the first message of a channel
// with no message, so reading an unused channel names its epoch. Losing the
// race to another writer is fine: the caller reads the winner's tail.
func (e *Engine) startEpoch(ctx context.Context, c *conn, channel string) error {
	msg := nats.NewMsg(e.names.history(channel))
	msg.Header[hdrKind] = []string{kindEpoch}
	msg.Header[hdrEpoch] = []string{engine.NewEpoch()}
	setUint(msg.Header, hdrPrev, 0)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil && !wrongLastSequence(err) {
		return fmt.Errorf("start epoch: %w", err)
	}
	return nil
}

// wrongLastSequence reports whether err is JetStream refusing a write whose
// expected last sequence is stale: another writer got there first.
func wrongLastSequence(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
