-- Claim an idempotency key for one request, atomically: the first request with a key owns it (for the key's
-- lifetime); a later one with the same key and the same fingerprint is answered with the first one's request id;
-- the same key with another fingerprint is a conflict. Two replicas racing with one key get one owner. A key held
-- for another tenant of the same id (one deleted since: its uid differs) is taken over as new: a tenant never
-- replays its namesake's requests.
-- KEYS[1] the key's HASH (fingerprint, request_id, tenant_uid). ARGV[1] fingerprint; ARGV[2] request id; ARGV[3] ttl
-- seconds; ARGV[4] the tenant's uid ("" when unknown).
-- Returns {"new"}, {"same", <request id>} or {"conflict"}.
local held = redis.call("HMGET", KEYS[1], "fingerprint", "tenant_uid")
local fingerprint, owner = held[1], held[2]
if not fingerprint or (owner and owner ~= "" and ARGV[4] ~= "" and owner ~= ARGV[4]) then
  redis.call("DEL", KEYS[1])
  redis.call("HSET", KEYS[1], "fingerprint", ARGV[1], "request_id", ARGV[2], "tenant_uid", ARGV[4])
  redis.call("EXPIRE", KEYS[1], tonumber(ARGV[3]))
  return {"new"}
end
if fingerprint == ARGV[1] then
  return {"same", redis.call("HGET", KEYS[1], "request_id")}
end
return {"conflict"}
