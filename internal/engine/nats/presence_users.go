package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A user entry <channel>.u.<user> lists the user's clients in the channel,
// each with the time its node last added it. Every AddPresence of one of
// them rewrites the entry, so it lives as long as the last of them;
// RemovePresence takes the client out and purges the entry once none is
// left, so the user stops counting at once.
//
// Nodes change an entry only from its latest revision (compare and set), so
// concurrent adds and removes of one user's clients never undo each other,
// and the purge of an emptied entry spares a write made since it was read.
// A client whose node died without removing it stays listed until
// staleClients presence TTLs after its last add; once the user's other
// clients are gone it keeps the user counted, but only until the entry
// expires, one presence TTL after its last write. A user is thus
// overcounted for at most one presence TTL, and never undercounted while
// the nodes' clocks are less than a presence TTL apart.

// staleClients is how many presence TTLs after its last add a client is
// dropped from its user's entry. A live client is added again within one
// TTL; the second covers clocks that disagree.
const staleClients = 2

// userClients is a user entry's value: client id → Unix ms of its last add.
type userClients map[string]int64

func (e *Engine) addUserClient(ctx context.Context, c *conn, key, clientID string) error {
	now := time.Now().UnixMilli()
	return e.updateUser(ctx, c, key, func(clients userClients) { clients[clientID] = now })
}

func (e *Engine) removeUserClient(ctx context.Context, c *conn, key, clientID string) error {
	return e.updateUser(ctx, c, key, func(clients userClients) { delete(clients, clientID) })
}

// updateUser applies change to the latest revision of the user entry key and
// writes it back, starting over whenever another node wrote first. An entry
// left with no client is purged.
func (e *Engine) updateUser(ctx context.Context, c *conn, key string, change func(userClients)) error {
	for {
		v, revision, err := e.read(ctx, c, key)
		if err != nil {
			return err
		}
		clients := userClients{}
		if revision > 0 {
			if err := json.Unmarshal(v, &clients); err != nil {
				return fmt.Errorf("decode %s: %w", key, err)
			}
		}
		change(clients)
		stale := time.Now().Add(-staleClients * e.cfg.PresenceTTL).UnixMilli()
		for id, added := range clients {
			if added < stale {
				delete(clients, id)
			}
		}
		if len(clients) == 0 {
			if revision == 0 {
				return nil
			}
			purged, err := e.purge(ctx, c, key, revision)
			if err != nil || purged {
				return err
			}
			continue // written since it was read
		}
		if v, err = json.Marshal(clients); err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		// Revision 0 expects the key to hold no message, as after a purge.
		_, err = c.presence.Update(ctx, key, v, revision)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if err != nil {
				return fmt.Errorf("write %s: %w", key, err)
			}
			return nil
		}
	}
}
