-- Give up an idempotency key whose request never became a job (refused before it was recorded), but only if it
-- still names that request (compare and delete), so that a retry with the same key runs afresh.
-- KEYS[1] the key's HASH. ARGV[1] request id. Returns 1 if released.
if redis.call("HGET", KEYS[1], "request_id") == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
