-- Publishes one publication atomically: answers a repeated idempotency key
-- with the first result, gives the channel an epoch if it has none, assigns
-- the next offset, appends to history, trims history by size and age, keeps
-- the keys' TTLs, and publishes on the channel's pub/sub channel. Running it
-- all in one script is what keeps offsets, history and delivery in the same
-- order.
--
-- KEYS[1] meta hash (epoch "e", newest offset "o")
-- KEYS[2] history stream
-- KEYS[3] idempotency key (absent when the publish has none)
-- ARGV[1] payload
-- ARGV[2] history size; 0 stores nothing and takes no offset
-- ARGV[3] history TTL in milliseconds; 0 for none
-- ARGV[4] idempotency TTL in milliseconds
-- ARGV[5] epoch to use if the channel has none
-- ARGV[6] meta TTL in milliseconds
-- ARGV[7] pub/sub channel
-- ARGV[8] publish command: SPUBLISH or PUBLISH
-- Returns {offset, epoch}.

local idem = KEYS[3]
if idem then
  local prev = redis.call('GET', idem)
  if prev then
    local offset, epoch = string.match(prev, '^(%d+):(.*)$')
    return {tonumber(offset), epoch}
  end
end

local size = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local offset, epoch = 0, ''

if size > 0 then
  epoch = redis.call('HGET', KEYS[1], 'e')
  if not epoch then
    epoch = ARGV[5]
    redis.call('HSET', KEYS[1], 'e', epoch)
    -- History left without its meta belongs to no epoch: drop it.
    redis.call('DEL', KEYS[2])
  end
  offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
  local expires = 0
  if ttl > 0 then
    expires = now + ttl
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', size, string.format('%d-0', offset),
    't', string.format('%d', now), 'x', string.format('%d', expires), 'p', ARGV[1])

  -- Drop expired publications from the front. Reads skip expired entries
  -- anyway; this and the key TTLs below bound memory. The oldest entry is
  -- looked at first, alone, as it is rarely expired.
  local cut = 0
  local from = '-'
  for _ = 1, 8 do
    local head = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 1)[1]
    if not head then
      break
    end
    local x = tonumber(head[2][4])
    if x == 0 or x > now then
      break
    end
    cut = tonumber(string.match(head[1], '^(%d+)'))
    from = '(' .. head[1]
  end
  if cut > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', cut + 1))
  end

  -- TTLs only ever grow, so no key outlives its meta: history lives as long
  -- as its longest-lived publication, or the meta TTL when they have none.
  local metaTTL = tonumber(ARGV[6])
  local keep = metaTTL
  if ttl > 0 then
    keep = ttl
  end
  if redis.call('PTTL', KEYS[2]) < keep then
    redis.call('PEXPIRE', KEYS[2], keep)
  end
  if redis.call('PTTL', KEYS[1]) < math.max(metaTTL, keep) then
    redis.call('PEXPIRE', KEYS[1], math.max(metaTTL, keep))
  end
end

redis.call(ARGV[8], ARGV[7], string.format('p%d:%s:%d:', offset, epoch, now) .. ARGV[1])
if idem then
  redis.call('SET', idem, string.format('%d:%s', offset, epoch), 'PX', ARGV[4])
end
return {offset, epoch}
