-- Confirm an admission once its job is recorded: admission takes the concurrency slot and the budget reservation
-- on a short provisional lease, so that an admission whose job record never appears (the gateway gave up on a
-- stalled Redis that ran the admission later) frees itself within a minute; the record's creation extends both to
-- their full lifetimes here. Only entries that still exist are touched (XX), so a confirmation never takes anything.
-- KEYS: 1 in-flight ZSET (request id -> lease expiry ms); 2 reservation expiry ZSET (request id -> ms).
-- ARGV: 1 request id, 2 slot lease expiry ms, 3 reservation expiry ms. Returns 1 if the slot was still held.
local held = redis.call("ZADD", KEYS[1], "XX", "CH", tonumber(ARGV[2]), ARGV[1])
local longest = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
if longest[2] then
  redis.call("PEXPIREAT", KEYS[1], tonumber(longest[2]))
end
redis.call("ZADD", KEYS[2], "XX", tonumber(ARGV[3]), ARGV[1])
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
  return 1
end
return held
