-- Settle one request: move its reservation out of "reserved", add the actual cost to "spent", and book the charge
-- in the period's ledger and breakdown. Idempotent: a request with no open reservation, or already in the ledger,
-- is never charged again (settling twice charges once).
-- KEYS: 1 budget period HASH; 2 reservations HASH; 3 reservation expiry ZSET; 4 ledger HASH; 5 ledger index ZSET;
--       6 breakdown HASH.
-- ARGV: 1 request id, 2 actual cost micros, 3 charge JSON, 4 now ms, 5 breakdown field, 6 retention seconds,
--       7 expected period id.
-- Returns 1 when charged, 0 when it had already been settled or its reservation was released.
if redis.call("HEXISTS", KEYS[4], ARGV[1]) == 1 then
  return 0
end
local reservation = redis.call("HGET", KEYS[2], ARGV[1])
if not reservation then
  return 0
end
local amount, period = string.match(reservation, "^(%d+):(.+)$")
if period ~= ARGV[7] then
  return 0
end
local cost = tonumber(ARGV[2])
redis.call("HINCRBY", KEYS[1], "reserved", -tonumber(amount))
redis.call("HINCRBY", KEYS[1], "spent", cost)
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], ARGV[1], ARGV[3])
redis.call("ZADD", KEYS[5], tonumber(ARGV[4]), ARGV[1])
redis.call("HINCRBY", KEYS[6], ARGV[5], cost)
redis.call("HINCRBY", KEYS[6], ARGV[5] .. "|count", 1)
local retention = tonumber(ARGV[6])
if retention > 0 then
  for i = 1, 6 do
    if i ~= 2 and i ~= 3 then
      redis.call("EXPIRE", KEYS[i], retention)
    end
  end
end
return 1
