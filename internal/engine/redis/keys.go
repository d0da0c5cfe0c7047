package redis

import "strings"

// channelKeys names the Redis keys and the pub/sub channel of one Herald
// channel. Every name carries the channel inside one hash tag, {channel},
// so in a Redis Cluster they all live in the channel's slot: the scripts
// that touch several of them, and the sharded publish they end with, run on
// one node. (Channel names cannot contain braces.)
type channelKeys struct {
	base string // prefix ":{" channel "}:"
}

func (e *Engine) keys(channel string) channelKeys {
	return channelKeys{base: e.prefix + ":{" + channel + "}:"}
}

// meta is a hash of the channel's epoch ("e") and newest offset ("o").
func (k channelKeys) meta() string { return k.base + "meta" }

// history is a stream of stored publications whose entry ids are
// "offset-0", so offsets map to stream ids directly.
func (k channelKeys) history() string { return k.base + "history" }

// idempotency holds the position a publish with key returned.
func (k channelKeys) idempotency(key string) string { return k.base + "idem:" + key }

// pubsub is the channel's Redis pub/sub channel, carrying publications and
// join/leave events.
func (k channelKeys) pubsub() string { return k.base + "pubsub" }

// Presence is kept in four keys: client id → info, client id → expiry time
// (a sorted set, so expired entries are found by score), client id → user,
// and user → number of present clients, so users are counted without
// reading the clients.
func (k channelKeys) presence() []string {
	return []string{k.base + "presence", k.base + "presence:expiry", k.base + "presence:user", k.base + "presence:users"}
}

// channelOf returns the Herald channel whose pubsub name is name, or "" if
// name is not one of this engine's.
func (e *Engine) channelOf(name string) string {
	rest, ok := strings.CutPrefix(name, e.prefix+":{")
	if !ok {
		return ""
	}
	channel, ok := strings.CutSuffix(rest, "}:pubsub")
	if !ok {
		return ""
	}
	return channel
}

// controlChannel is the pub/sub channel of control messages for every node;
// nodeChannel that of messages for one node.
func (e *Engine) controlChannel() string { return e.prefix + ":control" }

func (e *Engine) nodeChannel(nodeID string) string { return e.prefix + ":control:" + nodeID }

// keySlot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag, or of the whole key without one, modulo 16384. The engine needs it
// to group sharded subscriptions by the node that owns them.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % numSlots
}

// numSlots is the number of hash slots in a Redis Cluster.
const numSlots = 16384
