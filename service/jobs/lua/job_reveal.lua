-- Show a completed job to its clients and announce the change: the last step of the completion path, once the
-- charge, the cache, the followers and the concurrency slot are all booked (docs/architecture.md).
-- KEYS[1] job hash. ARGV[1] event channel ("": the caller publishes, with sharded pub/sub); ARGV[2] request id.
-- Returns 1 if the job was still hidden.
local hidden = redis.call("HDEL", KEYS[1], "settling")
if ARGV[1] ~= "" then
  redis.call("PUBLISH", ARGV[1], ARGV[2])
end
return hidden
