package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// Presence lives in the presence bucket, whose TTL is the presence TTL: the
// server drops an entry that AddPresence has not rewritten in time, so a
// dead node's clients vanish. The bucket keeps one message per key. A
// channel has two kinds of keys:
//
//   - <channel>.c.<client> per present client, valued with its info;
//   - <channel>.u.<user> per present user with a name, valued with the
//     user's clients in the channel (see presence_users.go).
//
// The server counts them without sending anything: a new consumer of the
// messages under <channel>.c (or .u) has as many messages pending as there
// are keys, and PresenceStats reads only that number. The count would
// include delete markers, so removals purge keys from the bucket's stream
// instead of deleting them.
//
// AddPresence and RemovePresence name every key they touch in full. On
// nats-server 2.9 a wildcard lookup in the bucket costs time in proportion
// to all its keys, every channel's, which the many adds and removes must not
// pay; a count, rarer, does.

// Key kinds, the token after a presence key's channel.
const (
	clientKind = "c"
	userKind   = "u"
)

func clientKey(channel, clientID string) string {
	return token(channel) + "." + clientKind + "." + token(clientID)
}

func userKey(channel, user string) string {
	return token(channel) + "." + userKind + "." + token(user)
}

// AddPresence adds or refreshes info.Client in channel for the presence TTL.
func (e *Engine) AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	v, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("nats: add presence: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := c.presence.Put(ctx, clientKey(channel, info.Client), v); err != nil {
		return e.fail("add presence", err)
	}
	if info.User == "" {
		return nil // anonymous clients are not users
	}
	if err := e.addUserClient(ctx, c, userKey(channel, info.User), info.Client); err != nil {
		return e.fail("add presence", err)
	}
	return nil
}

// RemovePresence removes clientID from channel, and its user when that was
// the user's last client there.
func (e *Engine) RemovePresence(ctx context.Context, channel, clientID string) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	key := clientKey(channel, clientID)
	// The caller names the client, not its user: the entry says which.
	v, revision, err := e.read(ctx, c, key)
	if err != nil {
		return e.fail("remove presence", err)
	}
	if revision == 0 {
		return nil // not present
	}
	var info protocol.ClientInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return fmt.Errorf("nats: remove presence: decode %s: %w", key, err)
	}
	if _, err := e.purge(ctx, c, key, 0); err != nil {
		return e.fail("remove presence", err)
	}
	if info.User == "" {
		return nil
	}
	if err := e.removeUserClient(ctx, c, userKey(channel, info.User), clientID); err != nil {
		return e.fail("remove presence", err)
	}
	return nil
}

// Presence returns the channel's present clients by client id.
func (e *Engine) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	c, err := e.client(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.presence(ctx, c, channel)
	if err != nil {
		return nil, e.fail("presence", err)
	}
	return out, nil
}

// PresenceStats counts the channel's present clients and distinct users.
// The server counts: the call takes the same four round trips for a channel
// of any size and transfers no entry.
func (e *Engine) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	c, err := e.client(ctx)
	if err != nil {
		return engine.PresenceStats{}, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ch := token(channel)
	clients, err := e.countKeys(ctx, c, ch+"."+clientKind+".*")
	if err != nil {
		return engine.PresenceStats{}, e.fail("presence stats", err)
	}
	users, err := e.countKeys(ctx, c, ch+"."+userKind+".*")
	if err != nil {
		return engine.PresenceStats{}, e.fail("presence stats", err)
	}
	return engine.PresenceStats{NumClients: clients, NumUsers: users}, nil
}

// presence reads the channel's client entries: a watch of their keys,
// stopped once it has delivered their current values.
func (e *Engine) presence(ctx context.Context, c *conn, channel string) (map[string]protocol.ClientInfo, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	w, err := c.presence.Watch(ctx, token(channel)+"."+clientKind+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch presence: %w", err)
	}
	defer w.Stop()
	out := make(map[string]protocol.ClientInfo)
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read presence: %w", ctx.Err())
		case kve := <-w.Updates():
			if kve == nil {
				return out, nil // the current values are all in
			}
			var info protocol.ClientInfo
			if err := json.Unmarshal(kve.Value(), &info); err != nil {
				return nil, fmt.Errorf("decode presence of %s: %w", kve.Key(), err)
			}
			out[info.Client] = info
		}
	}
}

// countKeys returns how many presence keys match filter, as the server
// counts them: the messages pending for a new consumer of the bucket's
// stream. The bucket keeps one message per key (History 1), so delivering
// all messages counts the same as delivering each key's last one, which
// costs nats-server 2.9 about twice as much to set up. The consumer
// delivers nothing and is deleted at once; its inactive threshold removes
// it should the delete never arrive.
func (e *Engine) countKeys(ctx context.Context, c *conn, filter string) (int, error) {
	cons, err := c.js.CreateConsumer(ctx, e.names.presenceStream, jetstream.ConsumerConfig{
		FilterSubject:     e.names.presenceKeys + filter,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: requestTimeout,
	})
	if err != nil {
		return 0, fmt.Errorf("count presence keys %s: %w", filter, err)
	}
	info := cons.CachedInfo()
	// A caller that gave up must not leave the consumer behind either.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	if err := c.js.DeleteConsumer(dctx, e.names.presenceStream, info.Name); err != nil {
		e.log.Warn("delete presence counting consumer; it expires by itself", "consumer", info.Name, "err", err)
	}
	return int(info.NumPending), nil
}

// read returns key's value and revision (its stream sequence), or revision
// 0 if it is absent. The stream's leader answers: the jetstream package reads
// entries with direct gets, which a lagging replica may answer, missing a
// client just added or a user entry just written.
func (e *Engine) read(ctx context.Context, c *conn, key string) ([]byte, uint64, error) {
	var resp struct {
		Message struct {
			Data []byte `json:"data"`
			Seq  uint64 `json:"seq"`
		} `json:"message"`
	}
	err := apiRequest(ctx, c.nc, "$JS.API.STREAM.MSG.GET."+e.names.presenceStream,
		map[string]string{"last_by_subj": e.names.presenceKeys + key}, &resp)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// purge removes key from the presence bucket's stream, leaving no delete
// marker behind, and says whether it was there. With revision > 0 it
// removes the key only at that revision: a later write stays. (The
// jetstream package purges only through a Stream handle, which costs a
// request to obtain, and does not tell whether anything was purged.)
func (e *Engine) purge(ctx context.Context, c *conn, key string, revision uint64) (bool, error) {
	req := struct {
		Filter string `json:"filter"`
		Seq    uint64 `json:"seq,omitempty"` // purges below it
	}{Filter: e.names.presenceKeys + key}
	if revision > 0 {
		req.Seq = revision + 1
	}
	var resp struct {
		Purged uint64 `json:"purged"`
	}
	if err := apiRequest(ctx, c.nc, "$JS.API.STREAM.PURGE."+e.names.presenceStream, req, &resp); err != nil {
		return false, fmt.Errorf("purge %s: %w", key, err)
	}
	return resp.Purged > 0, nil
}

// apiRequest sends req as JSON to a JetStream API subject and decodes the
// answer into resp, returning the error the server reports as a
// *jetstream.APIError.
func apiRequest(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", subject, err)
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return fmt.Errorf("request %s: %w", subject, err)
	}
	var apiErr struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &apiErr); err != nil {
		return fmt.Errorf("decode %s response: %w", subject, err)
	}
	if apiErr.Error != nil {
		return apiErr.Error
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decode %s response: %w", subject, err)
	}
	return nil
}
