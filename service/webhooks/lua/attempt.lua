-- Record one delivery attempt and the delivery's new state, together: the attempt is appended to the log, the
-- count raised, and state, next attempt and last answer set, so the log and the record never disagree.
-- KEYS[1] delivery HASH; KEYS[2] attempts LIST. ARGV[1] retention seconds; ARGV[2] attempt (JSON);
-- ARGV[3..] field, value pairs (JSON-encoded values). Returns the number of attempts made, or -1 if there is no record.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
redis.call("RPUSH", KEYS[2], ARGV[2])
local made = redis.call("HINCRBY", KEYS[1], "attempts", 1)
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
local ttl = tonumber(ARGV[1])
redis.call("EXPIRE", KEYS[1], ttl)
redis.call("EXPIRE", KEYS[2], ttl)
return made
