-- Claim due entries of a lease schedule (the tracker's jobs, the webhook deliveries): every entry whose score
-- (epoch ms) is <= now is re-scored to now + lease and returned with the score it had, the time it was due. The
-- re-score is the lease: if the claiming replica dies, the entry becomes due again when the lease runs out and another
-- replica picks it up.
-- KEYS[1] due ZSET; ARGV[1] now ms; ARGV[2] lease ms; ARGV[3] max entries.
-- Returns a flat list: id, due score, id, due score, ...
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, tonumber(ARGV[3]))
local lease_until = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call("ZADD", KEYS[1], "XX", lease_until, due[i])
end
return due
