package memory

import (
	"bytes"
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

const numPresenceShards = 32

type presenceEntry struct {
	info    protocol.ClientInfo
	expires int64 // Unix ms
}

type presenceShard struct {
	mu sync.Mutex
	m  map[string]map[string]presenceEntry // channel → client id → entry
}

// presence tracks clients per channel. Entries live for ttl after their last
// AddPresence; reads skip expired ones and the sweep frees them.
type presence struct {
	ttl    time.Duration
	seed   maphash.Seed
	shards [numPresenceShards]presenceShard
}

func (p *presence) init(seed maphash.Seed, ttl time.Duration) {
	p.seed, p.ttl = seed, ttl
	for i := range p.shards {
		p.shards[i].m = make(map[string]map[string]presenceEntry)
	}
}

func (p *presence) shard(channel string) *presenceShard {
	return &p.shards[maphash.String(p.seed, channel)%numPresenceShards]
}

func (p *presence) sweep(t time.Time) {
	now := t.UnixMilli()
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for channel, clients := range s.m {
			for id, c := range clients {
				if c.expires <= now {
					delete(clients, id)
				}
			}
			if len(clients) == 0 {
				delete(s.m, channel)
			}
		}
		s.mu.Unlock()
	}
}

// AddPresence adds or refreshes info.Client in channel for the presence TTL.
func (e *Engine) AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	p := &e.presence
	s := p.shard(channel)
	info.Info = bytes.Clone(info.Info) // the caller may reuse its buffer
	expires := time.Now().Add(p.ttl).UnixMilli()
	s.mu.Lock()
	clients := s.m[channel]
	if clients == nil {
		clients = make(map[string]presenceEntry)
		s.m[channel] = clients
	}
	clients[info.Client] = presenceEntry{info: info, expires: expires}
	s.mu.Unlock()
	return nil
}

// RemovePresence removes clientID from channel.
func (e *Engine) RemovePresence(ctx context.Context, channel, clientID string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	s := e.presence.shard(channel)
	s.mu.Lock()
	if clients := s.m[channel]; clients != nil {
		delete(clients, clientID)
		if len(clients) == 0 {
			delete(s.m, channel)
		}
	}
	s.mu.Unlock()
	return nil
}

// Presence returns the channel's unexpired clients by client id.
func (e *Engine) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	s := e.presence.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]protocol.ClientInfo, len(s.m[channel]))
	for id, c := range s.m[channel] {
		if c.expires > now {
			out[id] = c.info
		}
	}
	return out, nil
}

// PresenceStats counts the channel's unexpired clients and distinct users.
func (e *Engine) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	if err := e.check(ctx); err != nil {
		return engine.PresenceStats{}, err
	}
	now := time.Now().UnixMilli()
	s := e.presence.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	users := make(map[string]struct{})
	var st engine.PresenceStats
	for _, c := range s.m[channel] {
		if c.expires > now {
			st.NumClients++
			if c.info.User != "" {
				users[c.info.User] = struct{}{}
			}
		}
	}
	st.NumUsers = len(users)
	return st, nil
}
