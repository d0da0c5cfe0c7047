package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// minRebalanceInterval spaces slot refreshes: a failing node takes all its
// subscriptions with it, and one refresh serves them all.
const minRebalanceInterval = 100 * time.Millisecond

// troubled asks the rebalancer to read the cluster's slots again: a
// connection failed, or Redis redirected or dropped a subscription, which
// is how a slot moving to another node shows.
func (s *subscriber) troubled() {
	if !s.cluster {
		return
	}
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// rebalanceLoop moves subscriptions to the nodes that own their slots
// whenever troubled is called.
func (s *subscriber) rebalanceLoop() {
	e := s.e
	var delay time.Duration
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-s.refresh:
		}
		retried, err := s.rebalance()
		switch {
		case err != nil:
			delay = nextBackoff(delay)
			e.log.Warn("cannot read the cluster's slots", "error", err, "retry_in", delay)
			s.troubled()
		case retried:
			// Redirected where the slots say the subscription belongs: the
			// nodes do not agree yet. Ask again, less and less often.
			delay = nextBackoff(delay)
		default:
			delay = minRebalanceInterval
		}
		if !e.sleep(jitter(delay)) {
			return
		}
	}
}

// rebalance reads the slots and moves every subscription held on a
// connection to a node that no longer owns its slot, and makes refused
// subscriptions again, reporting whether one was refused by the node the
// slots name. A moved subscription was possibly interrupted, so it is
// resynced once made again.
func (s *subscriber) rebalance() (retried bool, err error) {
	slots, err := s.fetchSlots(s.e.ctx)
	if err != nil {
		return false, err
	}
	touched := make(map[*psConn]struct{})
	s.mu.Lock()
	s.slots = slots
	conns := make([]*psConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	for _, c := range conns {
		for sub := range c.refused {
			delete(c.refused, sub)
			if slots[sub.slot] == c.addr {
				c.resubscribe(sub)
				touched[c] = struct{}{}
				retried = true
			} // else moved below
		}
		for _, sub := range c.assigned {
			if slots[sub.slot] == c.addr {
				continue
			}
			to := s.connFor(sub.slot)
			c.unassign(sub)
			to.assign(sub)
			if sub.confirmed {
				sub.resync.Store(true)
			}
			touched[c], touched[to] = struct{}{}, struct{}{}
		}
	}
	s.mu.Unlock()
	for c := range touched {
		c.signal()
	}
	return retried, nil
}

// fetchSlots asks the cluster which master owns each slot, as addresses
// the client knows the nodes by.
func (s *subscriber) fetchSlots(ctx context.Context) ([]string, error) {
	var errs []error
	for addr, node := range s.e.client.Nodes() {
		shards, err := node.Do(ctx, node.B().ClusterShards().Build()).ToArray()
		if err == nil {
			var slots []string
			if slots, err = parseShards(shards, addr, s.e.opt.TLSConfig != nil); err == nil {
				return slots, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("read cluster slots: no node known")
	}
	return nil, fmt.Errorf("read cluster slots: %w", errors.Join(errs...))
}

// parseShards maps each slot to its master's address from a CLUSTER SHARDS
// reply given by the node at from, naming nodes as rueidis does: by their
// announced endpoint, or from's host when they announce none.
func parseShards(shards []rueidis.RedisMessage, from string, tls bool) ([]string, error) {
	slots := make([]string, numSlots)
	fromHost, _, _ := net.SplitHostPort(from)
	for _, shard := range shards {
		fields, err := shard.AsMap()
		if err != nil {
			return nil, fmt.Errorf("parse CLUSTER SHARDS: %w", err)
		}
		master := ""
		nodesField := fields["nodes"]
		nodes, _ := nodesField.ToArray()
		for _, n := range nodes {
			node, err := n.AsMap()
			if err != nil {
				return nil, fmt.Errorf("parse CLUSTER SHARDS node: %w", err)
			}
			// Copied out of the map: rueidis's accessors need addressable values.
			role, health, endpoint, portField, tlsPortField := node["role"], node["health"], node["endpoint"], node["port"], node["tls-port"]
			if r, _ := role.ToString(); r != "master" {
				continue
			}
			if h, _ := health.ToString(); h != "online" {
				continue
			}
			port, _ := portField.AsInt64()
			if tlsPort, _ := tlsPortField.AsInt64(); tls && tlsPort > 0 {
				port = tlsPort
			}
			host, _ := endpoint.ToString()
			switch host {
			case "?":
				continue
			case "":
				host = fromHost
			}
			master = net.JoinHostPort(host, strconv.FormatInt(port, 10))
		}
		if master == "" {
			continue // a shard without a healthy master: its slots wait
		}
		slotsField := fields["slots"]
		ranges, err := slotsField.AsIntSlice()
		if err != nil {
			return nil, fmt.Errorf("parse CLUSTER SHARDS slots: %w", err)
		}
		if len(ranges)%2 != 0 {
			return nil, fmt.Errorf("parse CLUSTER SHARDS slots: odd range bounds %v", ranges)
		}
		for i := 0; i < len(ranges); i += 2 {
			for slot := max(ranges[i], 0); slot <= min(ranges[i+1], numSlots-1); slot++ {
				slots[slot] = master
			}
		}
	}
	return slots, nil
}
