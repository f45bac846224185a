-- Move a job to COMPLETED exactly once, set its retention, and announce the change.
-- KEYS[1] job hash; ARGV[1] event channel; ARGV[2] request id; ARGV[3] retention seconds;
-- ARGV[4..] field, value pairs (must include state = '"COMPLETED"').
-- Returns 1 for the call that completed the job, 0 if it was already COMPLETED, -1 if it does not exist.
-- Callers hang exactly-once side effects (settling cost, webhooks) on the 1.
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return -1
end
if state == '"COMPLETED"' then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV, 4))
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[3]))
redis.call("PUBLISH", ARGV[1], ARGV[2])
return 1
