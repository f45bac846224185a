-- Release a request's reservation in full (failed, cancelled, refused upstream, or lost). Idempotent: releasing a
-- reservation that was already settled or released does nothing, so nothing is ever released twice.
-- KEYS: 1 budget period HASH; 2 reservations HASH; 3 reservation expiry ZSET.
-- ARGV: 1 request id, 2 expected period id.
-- Returns the released amount in micros (0 when there was nothing to release).
local reservation = redis.call("HGET", KEYS[2], ARGV[1])
if not reservation then
  return 0
end
local amount, period = string.match(reservation, "^(%d+):(.+)$")
if period ~= ARGV[2] then
  return 0
end
redis.call("HINCRBY", KEYS[1], "reserved", -tonumber(amount))
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
return tonumber(amount)
