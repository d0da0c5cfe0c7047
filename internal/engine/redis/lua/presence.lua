-- Adds, removes, lists or counts a channel's present clients. Every call
-- first drops up to 1000 expired entries, so a dead node's clients go away
-- at the pace the channel is used, without one call blocking Redis for long.
--
-- KEYS[1] hash client id -> info
-- KEYS[2] sorted set client id -> expiry time (ms)
-- KEYS[3] hash client id -> user (anonymous clients have no entry)
-- KEYS[4] hash user -> number of present clients
-- ARGV[1] "add", "remove", "list" or "stats"
-- add:    ARGV[2] client, ARGV[3] user, ARGV[4] info, ARGV[5] TTL (ms)
-- remove: ARGV[2] client
-- list returns {client, info, ...}; stats returns {clients, users}.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- release forgets a client's user, counting the user out.
local function release(client)
  local user = redis.call('HGET', KEYS[3], client)
  if user then
    redis.call('HDEL', KEYS[3], client)
    if redis.call('HINCRBY', KEYS[4], user, -1) <= 0 then
      redis.call('HDEL', KEYS[4], user)
    end
  end
end

local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, client in ipairs(gone) do
  release(client)
  redis.call('HDEL', KEYS[1], client)
end
if #gone > 0 then
  redis.call('ZREM', KEYS[2], unpack(gone))
end

local op = ARGV[1]
if op == 'add' then
  local client, user, ttl = ARGV[2], ARGV[3], tonumber(ARGV[5])
  if redis.call('HGET', KEYS[3], client) ~= user then
    release(client)
    if user ~= '' then
      redis.call('HSET', KEYS[3], client, user)
      redis.call('HINCRBY', KEYS[4], user, 1)
    end
  end
  redis.call('HSET', KEYS[1], client, ARGV[4])
  redis.call('ZADD', KEYS[2], now + ttl, client)
  -- The newest entry is the last to expire, so the keys may go with it.
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  return 1
elseif op == 'remove' then
  local client = ARGV[2]
  release(client)
  redis.call('HDEL', KEYS[1], client)
  redis.call('ZREM', KEYS[2], client)
  return 1
elseif op == 'list' then
  -- Entries past their expiry but not yet dropped are left out.
  local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
  local out = {}
  for i = 1, #live, 500 do
    local chunk = {unpack(live, i, math.min(i + 499, #live))}
    local infos = redis.call('HMGET', KEYS[1], unpack(chunk))
    for j, client in ipairs(chunk) do
      if infos[j] then
        out[#out + 1] = client
        out[#out + 1] = infos[j]
      end
    end
  end
  return out
elseif op == 'stats' then
  return {redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'), redis.call('HLEN', KEYS[4])}
end
return redis.error_reply('unknown presence operation ' .. tostring(op))
