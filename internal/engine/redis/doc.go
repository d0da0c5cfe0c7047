// Package redis is Herald's engine for many nodes sharing one Redis: history,
// offsets, epochs, idempotency keys and presence live in Redis, and
// publications reach every node through Redis pub/sub. It uses rueidis, whose
// automatic pipelining sends the commands of concurrent calls together.
//
// # Connecting
//
// Config.URL takes these forms:
//
//	redis://[user:password@]host:port[/db]          standalone
//	rediss://...                                    the same over TLS
//	redis://host:port?addr=host2:port2&addr=...     Redis Cluster (seed nodes)
//	redis://sentinel:port?addr=sentinel2:port&master_set=NAME   Sentinel
//
// A single address that turns out to be a cluster node is used as a cluster
// seed, so redis://host:port also reaches a cluster. With master_set, the
// addresses are Sentinels and the user, password and TLS are the master's (the
// Sentinels are reached without them). rediss:// verifies the
// server's certificate unless skip_verify is given. Other query parameters
// of rueidis.ParseURL apply (db, dial_timeout, client_name, ...). The engine
// connects in Start, not New, and requires Redis 6.2 or later; a cluster
// requires Redis 7 or later for sharded pub/sub.
//
// # Keys
//
// Every key and pub/sub channel starts with Config.Prefix ("herald"). A
// channel's names all carry the channel as their hash tag, so in a cluster
// they share one slot and one node:
//
//	PREFIX:{CHANNEL}:meta             hash: epoch "e", newest offset "o"
//	PREFIX:{CHANNEL}:history          stream of publications, entry id = offset
//	PREFIX:{CHANNEL}:idem:KEY         position of an idempotent publish
//	PREFIX:{CHANNEL}:presence         hash: client id → client info
//	PREFIX:{CHANNEL}:presence:expiry  sorted set: client id → expiry time
//	PREFIX:{CHANNEL}:presence:user    hash: client id → user id
//	PREFIX:{CHANNEL}:presence:users   hash: user id → present clients
//	PREFIX:{CHANNEL}:pubsub           pub/sub channel of publications, joins, leaves
//	PREFIX:control, PREFIX:control:NODE  control bus to all nodes, to one node
//
// On Redis 7 and later channel messages use sharded pub/sub (SPUBLISH and
// SSUBSCRIBE), so in a cluster a channel's messages stay on its shard; the
// control bus uses classic pub/sub, which a cluster broadcasts to every node.
//
// # Memory
//
// Every key expires. History holds at most HistorySize publications per
// channel, trimmed with each publish, and each publication is dropped after
// its HistoryTTL (reads never return an expired one). The history stream
// expires with its longest-lived publication, or after HistoryMetaTTL when
// publications have no TTL; the meta hash expires HistoryMetaTTL after the
// channel's last publish or history read, and never before its history.
// Idempotency keys expire after their TTL; a channel's presence keys after
// PresenceTTL without an AddPresence.
//
// # What an acknowledged publish means
//
// Publish returns once the publication is in Redis's memory and has been
// published to subscribed nodes. Whether it survives a Redis crash depends
// on Redis persistence: only with appendonly yes and appendfsync always
// (or everysec, losing up to a second) is it on disk. Without persistence a
// restarted Redis has lost every channel's meta, so the next publish or
// history read gives the channel a new epoch, and clients resuming from an
// old position are told that continuity is broken rather than given a gap.
//
// # Delivery
//
// A node holds one Redis subscription per subscribed channel, on dedicated
// pub/sub connections: one in standalone and Sentinel mode, one per master
// in a cluster. Messages are handed to the Handler by a fixed set of
// delivery goroutines, one channel always on the same one, so a channel's
// calls are ordered while channels proceed in parallel. If the handler falls
// behind, the connection's reader waits, and Redis ultimately disconnects a
// subscriber whose output buffer overflows (client-output-buffer-limit
// pubsub); the engine then reconnects like after any connection loss:
// with backoff, resubscribing every channel and calling the handler's
// HandleResync (engine.ResyncHandler) for each, since publications may have
// been missed meanwhile.
package redis
