-- Admission of one request for one tenant, in one atomic decision: the requests-per-minute window, the concurrency
-- limit and the budget, checked together and taken together, so a request refused by any of them takes none.
-- All keys carry the tenant's hash tag, so the script also runs on Redis Cluster.
-- KEYS: 1 rate window ZSET (request id -> admission ms); 2 in-flight ZSET (request id -> lease expiry ms);
--       3 budget period HASH (spent, reserved); 4 reservations HASH (request id -> "micros:period");
--       5 reservation expiry ZSET (request id -> ms).
-- ARGV: 1 now ms, 2 request id, 3 requests per minute (0: no limit), 4 max concurrent (0: no limit), 5 lease ms,
--       6 window ms, 7 estimate micros (0: nothing to reserve), 8 budget limit micros (-1: no limit),
--       9 reservation expiry ms, 10 period id.
-- Returns {1, spent, reserved} when admitted (reserved includes this request), {0, rule, retry after ms} for the
-- rate and concurrency limits, or {0, "budget", spent, reserved} when the estimate does not fit the budget.
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[3])
local max_concurrent = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local estimate = tonumber(ARGV[7])
local limit = tonumber(ARGV[8])

redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - window)
if rpm > 0 and redis.call("ZCARD", KEYS[1]) >= rpm then
  local oldest = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
  return {0, "requests_per_minute", tonumber(oldest[2]) + window - now}
end

-- Leases that ran out belong to jobs nobody follows any more (their replicas died): their slots are free.
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now)
if max_concurrent > 0 and redis.call("ZCARD", KEYS[2]) >= max_concurrent then
  return {0, "max_concurrent", 1000}
end

local spent = tonumber(redis.call("HGET", KEYS[3], "spent") or "0")
local reserved = tonumber(redis.call("HGET", KEYS[3], "reserved") or "0")
if limit >= 0 and spent + reserved + estimate > limit then
  return {0, "budget", spent, reserved}
end

redis.call("ZADD", KEYS[1], now, ARGV[2])
redis.call("PEXPIRE", KEYS[1], window)
redis.call("ZADD", KEYS[2], now + lease, ARGV[2])
local longest = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[2], tonumber(longest[2]))
if estimate > 0 then
  redis.call("HINCRBY", KEYS[3], "reserved", estimate)
  redis.call("PERSIST", KEYS[3])  -- a period's totals never expire while a reservation is open in it (settle.lua)
  redis.call("HSET", KEYS[4], ARGV[2], estimate .. ":" .. ARGV[10])
  redis.call("ZADD", KEYS[5], tonumber(ARGV[9]), ARGV[2])
  reserved = reserved + estimate
end
return {1, spent, reserved}
