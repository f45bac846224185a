-- Write fields of a job that is not yet COMPLETED, optionally (re)set its expiry, and announce the change.
-- COMPLETED is terminal: once job_complete.lua has completed a job, every later write is refused, so progress
-- that arrives late can never overwrite a final outcome.
-- KEYS[1] job hash; ARGV[1] event channel ("": the caller publishes, with sharded pub/sub); ARGV[2] request id;
-- ARGV[3] expiry seconds (0: leave as is); ARGV[4..] field, value pairs (JSON-encoded values).
-- Returns 1 if written, 0 if the job was already COMPLETED, -1 if it does not exist.
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return -1
end
if state == '"COMPLETED"' then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV, 4))
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
end
if ARGV[1] ~= "" then
  redis.call("PUBLISH", ARGV[1], ARGV[2])
end
return 1
