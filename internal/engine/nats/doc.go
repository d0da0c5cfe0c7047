// Package nats is Herald's engine for many nodes sharing a NATS server or
// cluster with JetStream (nats-server 2.9 or later): JetStream stores
// history, and core NATS carries live delivery, presence events and the
// control bus.
//
// # Layout
//
// With Config.Prefix p (default "herald") and channel names encoded as one
// subject token each (unpadded base64url, see token), the engine uses:
//
//   - stream p_history, subjects p.h.<channel>: every stored publication of
//     a channel, in offset order, on the channel's own subject. The stream
//     republishes each message once stored (JetStream's RePublish) to
//     p.d.<channel>, headers included;
//   - p.d.<channel>: what a node subscribed to the channel receives, one
//     core subscription per channel per node: the republished stored
//     publications, plus ephemeral publications, joins and leaves sent there
//     directly, each marked by a Herald-Kind header;
//   - KV bucket p_presence (TTL = Config.PresenceTTL, one message per key,
//     stream KV_p_presence): keys <channel>.c.<client>, valued with the
//     client's JSON info, and <channel>.u.<user> for each user with a client
//     in the channel (anonymous clients have none), valued with the user's
//     clients there. The server counts each kind for PresenceStats, as the
//     pending messages of a consumer deleted at once, so no entry is sent;
//     removals purge keys instead of deleting them, as a delete marker would
//     count. User and client ids are tokens like channel names;
//   - KV bucket p_idempotency, keys derived from channel and idempotency
//     key, values the first publish's position;
//   - p.control (every node) and p.node.<node id> (one node): the control bus.
//
// # Offsets and epochs
//
// JetStream's sequences count the whole stream, so a channel's offset is a
// header of its messages: each publish writes offset last+1, with
// Nats-Expected-Last-Subject-Sequence set to the stream sequence of the
// channel's last message. If another publisher, on this node or another,
// stored first, JetStream rejects the write; the engine reads the
// channel's last message again and retries, so two publishers never take
// the same offset. Each node caches the last message of the channels it
// writes to, so a publish without contention is one round trip. Only the stored message is
// ever delivered: a publish JetStream rejected was never republished.
//
// The epoch is a header too, copied from the channel's last message and
// chosen anew when the channel's subject holds no message: on first use (a
// History read of an unused channel stores an "epoch" marker so the read
// can name the epoch), and after the history was lost (stream deleted,
// server data wiped). The engine never removes a channel's last message,
// which carries its offset and epoch: RemoveHistory stores a "removed"
// tombstone and purges what precedes it; retention trims only older
// messages. Config.HistoryMaxAge, if set, does remove idle channels'
// last messages; such a channel starts again in a new epoch.
//
// # Delivery
//
// A node subscribes to p.d.<channel> for each channel with local
// subscribers and hands what arrives to the handler from one of a few
// delivery goroutines, each channel always on the same one. A single
// nats-server 2.9 republishes the writes of different connections in the
// order their goroutines get there, which can swap consecutive offsets; each
// subscription therefore puts stored publications back in offset order,
// holding an early one for up to reorderWindow. After a reconnect, or if a
// predecessor never comes, the handler's HandleResync repairs the channel
// from history.
//
// # Retention
//
// HistorySize and HistoryTTL vary per namespace, while JetStream's limits
// are per stream, so the engine applies them itself and all channels share
// one stream. Each stored message carries a floor (offsets at or below it
// are gone: the greater of the previous floor and offset-HistorySize, so
// the latest publish's size wins and a later, larger size brings nothing
// back) and its own expiry time (its time plus its HistoryTTL). History
// reads filter by the last message's floor and by each message's expiry;
// publishes purge the superseded messages from the stream every few
// publishes (purge with keep), keeping storage within about twice the
// size. Each node also remembers, for the channels it publishes to, when
// its stored messages expire, and the first publish after an eighth of a
// TTL has passed purges the expired ones (purge by sequence), so a busy
// channel's storage is bounded by its age as well as its size. A channel's
// last message, which carries its offset and epoch, is never purged this
// way; the stream's age limit, Config.HistoryMaxAge, bounds what is left:
// idle channels, and messages of channels whose node forgot them.
//
// # Acknowledgements and disks
//
// Publish returns once JetStream's PubAck says the publication is stored:
// with Replicas > 1, stored by a majority of the stream's replicas. Stored
// is not synced to disk: nats-server writes JetStream files through the OS
// page cache and fsyncs them every sync_interval, two minutes by default,
// so a power loss (not a process crash) can lose acknowledged publications
// of a single server. nats-server 2.9 fixes the interval at two minutes and
// refuses a sync_interval setting ("unknown field"); for "acknowledged"
// to mean "survives a power loss" there, run a cluster with Replicas 3, so
// an acknowledged publication is on two servers that must lose power
// together to lose it. Later servers make the interval a setting
// (`jetstream { sync_interval: ... }`, from 2.10); where the server accepts
// the value `always`, it fsyncs every write before acknowledging it, on any
// replica count, at a large cost in throughput.
package nats
