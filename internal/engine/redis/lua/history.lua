-- Reads a channel's position and, optionally, publications from its history,
-- atomically. A channel without meta gets its epoch here, as reading a
-- channel's position must fix the epoch later publishes continue.
--
-- KEYS[1] meta hash, KEYS[2] history stream
-- ARGV[1] epoch to use if the channel has none
-- ARGV[2] meta TTL in milliseconds
-- ARGV[3] limit: 0 reads only the position, -1 every publication in range
-- ARGV[4] XRANGE or XREVRANGE
-- ARGV[5], ARGV[6] the range's first and last stream id, as the command
--   takes them
-- Returns {epoch, offset, id, time, payload, id, time, payload, ...}.

local meta = redis.call('HMGET', KEYS[1], 'e', 'o')
local epoch, top = meta[1], meta[2] or '0'
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
end
local metaTTL = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < metaTTL then
  redis.call('PEXPIRE', KEYS[1], metaTTL)
end

local out = {epoch, top}
local need = tonumber(ARGV[3])
if need == 0 then
  return out
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cmd, from, to = ARGV[4], ARGV[5], ARGV[6]
while true do
  local batch
  if need < 0 then
    batch = redis.call(cmd, KEYS[2], from, to)
  else
    batch = redis.call(cmd, KEYS[2], from, to, 'COUNT', need)
  end
  local asked = need
  for _, entry in ipairs(batch) do
    -- entry is {id, {'t', time, 'x', expires, 'p', payload}}
    local f = entry[2]
    local x = tonumber(f[4])
    if x == 0 or x > now then
      out[#out + 1] = entry[1]
      out[#out + 1] = f[2]
      out[#out + 1] = f[6]
      need = need - 1
    end
  end
  -- Expired entries took part of the count: read on past them until the
  -- limit is met or the range is exhausted.
  if asked < 0 or need == 0 or #batch < asked then
    return out
  end
  from = '(' .. batch[#batch][1]
end
