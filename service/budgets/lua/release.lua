-- Release a request's reservation in full (failed, cancelled, refused upstream, or lost). Idempotent: releasing a
-- reservation that was already settled or released does nothing, so nothing is ever released twice.
-- KEYS: 1 budget period HASH; 2 reservations HASH; 3 reservation expiry ZSET.
-- ARGV: 1 request id, 2 expected period id, 3 retention seconds, 4 when the period's totals expire once no
--       reservation is open in it (epoch ms: its end plus the retention, as for settle.lua; 0: never).
-- Returns the released amount in micros (0 when there was nothing to release).
local reservation = redis.call("HGET", KEYS[2], ARGV[1])
if not reservation then
  return 0
end
local amount, period = string.match(reservation, "^(%d+):(.+)$")
if period ~= ARGV[2] then
  return 0
end
local reserved = redis.call("HINCRBY", KEYS[1], "reserved", -tonumber(amount))
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
local kept_until = tonumber(ARGV[4])
if kept_until > 0 and reserved <= 0 then
  local time = redis.call("TIME")
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call("PEXPIREAT", KEYS[1], math.max(kept_until, now_ms + tonumber(ARGV[3]) * 1000))
end
return tonumber(amount)
