-- Settle one request: move its reservation out of "reserved", add the actual cost to "spent", and book the charge
-- in the period's ledger and breakdown. Idempotent: a request with no open reservation, or already in the ledger,
-- is never charged again (settling twice charges once).
-- KEYS: 1 budget period HASH; 2 reservations HASH; 3 reservation expiry ZSET; 4 ledger HASH; 5 ledger index ZSET;
--       6 breakdown HASH.
-- ARGV: 1 request id, 2 actual cost micros (never charged beyond the reservation), 3 charge JSON, 4 now ms,
--       5 breakdown field, 6 retention seconds (0: keep), 7 expected period id, 8 when the period's keys expire
--       (epoch ms: its end plus the retention; 0 for a lifetime budget, whose totals are never dropped).
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
local cost = math.min(tonumber(ARGV[2]), tonumber(amount))
redis.call("HINCRBY", KEYS[1], "reserved", -tonumber(amount))
redis.call("HINCRBY", KEYS[1], "spent", cost)
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], ARGV[1], ARGV[3])
redis.call("ZADD", KEYS[5], tonumber(ARGV[4]), ARGV[1])
redis.call("HINCRBY", KEYS[6], ARGV[5], cost)
redis.call("HINCRBY", KEYS[6], ARGV[5] .. "|count", 1)
local retention, kept_until = tonumber(ARGV[6]), tonumber(ARGV[8])
if kept_until > 0 then
  -- A period's totals, ledger and breakdown live until its end plus the retention, and never less than the
  -- retention from now on Redis's own clock (a late settlement): so a reservation still open in the period (no job
  -- outlives the retention: see Settings) always finds its totals.
  local time = redis.call("TIME")
  kept_until = math.max(kept_until, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + retention * 1000)
  for _, i in ipairs({4, 5, 6}) do
    redis.call("PEXPIREAT", KEYS[i], kept_until)
  end
  -- The totals never expire while a reservation is open in the period (release.lua sets it once none is).
  if tonumber(redis.call("HGET", KEYS[1], "reserved") or "0") > 0 then
    redis.call("PERSIST", KEYS[1])
  else
    redis.call("PEXPIREAT", KEYS[1], kept_until)
  end
elseif retention > 0 then
  -- A lifetime budget's totals stay; its charges are kept for the retention after the last one.
  for _, i in ipairs({4, 5, 6}) do
    redis.call("EXPIRE", KEYS[i], retention)
  end
end
return 1
