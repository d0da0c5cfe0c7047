package node

import "iter"

// subscriptionSet is a session's subscriptions by channel. Most sessions
// hold a handful, for which a slice searched in order is no slower than a
// map and much smaller (a Go map holding one subscription takes about 250
// bytes, the slice 8: a tenth of an idle connection's memory). Past
// smallSubscriptionSet entries it moves to a map, since a session may hold
// hundreds. The zero value is empty and ready to use.
type subscriptionSet struct {
	small []*subscription
	large map[string]*subscription
}

const smallSubscriptionSet = 16

func (ss *subscriptionSet) get(channel string) *subscription {
	if ss.large != nil {
		return ss.large[channel]
	}
	for _, sub := range ss.small {
		if sub.channel == channel {
			return sub
		}
	}
	return nil
}

// put adds sub, whose channel must not be in the set.
func (ss *subscriptionSet) put(sub *subscription) {
	switch {
	case ss.large != nil:
		ss.large[sub.channel] = sub
	case len(ss.small) < smallSubscriptionSet:
		ss.small = append(ss.small, sub)
	default:
		ss.large = make(map[string]*subscription, 2*smallSubscriptionSet)
		for _, s := range ss.small {
			ss.large[s.channel] = s
		}
		ss.large[sub.channel] = sub
		ss.small = nil
	}
}

func (ss *subscriptionSet) remove(channel string) {
	if ss.large != nil {
		delete(ss.large, channel)
		return
	}
	for i, sub := range ss.small {
		if sub.channel == channel {
			last := len(ss.small) - 1
			ss.small[i] = ss.small[last]
			ss.small[last] = nil
			ss.small = ss.small[:last]
			return
		}
	}
}

func (ss *subscriptionSet) len() int {
	if ss.large != nil {
		return len(ss.large)
	}
	return len(ss.small)
}

// all yields every subscription, in no particular order. The set must not
// change during the iteration.
func (ss *subscriptionSet) all() iter.Seq[*subscription] {
	return func(yield func(*subscription) bool) {
		if ss.large != nil {
			for _, sub := range ss.large {
				if !yield(sub) {
					return
				}
			}
			return
		}
		for _, sub := range ss.small {
			if !yield(sub) {
				return
			}
		}
	}
}
