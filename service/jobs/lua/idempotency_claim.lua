-- Claim an idempotency key for one request, atomically: the first request with a key owns it (for the key's
-- lifetime); a later one with the same key and the same fingerprint is answered with the first one's request id;
-- the same key with another fingerprint is a conflict. Two replicas racing with one key get one owner.
-- KEYS[1] the key's HASH (fingerprint, request_id). ARGV[1] fingerprint; ARGV[2] request id; ARGV[3] ttl seconds.
-- Returns {"new"}, {"same", <request id>} or {"conflict"}.
local fingerprint = redis.call("HGET", KEYS[1], "fingerprint")
if not fingerprint then
  redis.call("HSET", KEYS[1], "fingerprint", ARGV[1], "request_id", ARGV[2])
  redis.call("EXPIRE", KEYS[1], tonumber(ARGV[3]))
  return {"new"}
end
if fingerprint == ARGV[1] then
  return {"same", redis.call("HGET", KEYS[1], "request_id")}
end
return {"conflict"}
