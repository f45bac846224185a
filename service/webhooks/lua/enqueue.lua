-- Create a webhook delivery once: a delivery id is derived from its request id, so queueing it again (a completion
-- path repeated after a crash) finds the record and changes nothing.
-- KEYS[1] delivery HASH. ARGV[1] retention seconds; ARGV[2..] field, value pairs (JSON-encoded values).
-- Returns 1 if created, 0 if it already existed.
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV, 2))
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[1]))
return 1
