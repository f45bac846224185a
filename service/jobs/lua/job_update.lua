-- Apply a partial update to a job that is not yet COMPLETED, and announce the change.
-- KEYS[1] job hash; ARGV[1] event channel; ARGV[2] request id; ARGV[3..] field, value pairs (JSON-encoded values).
-- Returns 1 if applied, 0 if the job is already COMPLETED (terminal states never move), -1 if it does not exist.
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return -1
end
if state == '"COMPLETED"' then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
redis.call("PUBLISH", ARGV[1], ARGV[2])
return 1
