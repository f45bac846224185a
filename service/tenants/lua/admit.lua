-- Admission of one request for one tenant: the requests-per-minute window and the concurrency limit, checked and
-- taken together, so a request refused by either consumes neither.
-- KEYS[1] rate window ZSET (request id -> admission ms); KEYS[2] in-flight ZSET (request id -> lease expiry ms).
-- ARGV: 1 now ms, 2 request id, 3 requests per minute (0: no limit), 4 max concurrent (0: no limit),
--       5 lease ms, 6 window ms.
-- Returns {1} when admitted, or {0, rule, retry after ms}.
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[3])
local max_concurrent = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local window = tonumber(ARGV[6])

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

redis.call("ZADD", KEYS[1], now, ARGV[2])
redis.call("PEXPIRE", KEYS[1], window)
redis.call("ZADD", KEYS[2], now + lease, ARGV[2])
local longest = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[2], tonumber(longest[2]))
return {1}
