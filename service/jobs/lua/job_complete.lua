-- The exactly-once transition of a job to COMPLETED, with everything that must be recorded in the same atomic step.
-- COMPLETED is terminal (see job_write.lua): only the one call that moves the job there is told so (1), and it alone
-- runs the completion's side effects. Outbox entries (name -> payload) are written with the transition, in the
-- job's slot, so work that must follow a completion (a webhook delivery) can never be lost between the two.
-- No PUBLISH here: the completion path announces the change last, after its side effects (docs/architecture.md).
-- KEYS[1] job hash; KEYS[2] job outbox hash. ARGV[1] a field that must not be set for the completion to happen
-- ("" for none: a stalled submit is failed only while fal's id is still unknown); ARGV[2] expiry seconds; ARGV[3]
-- number of outbox entries n; ARGV[4 .. 3+2n] outbox name, payload pairs; ARGV[4+2n ..] field, value pairs
-- (JSON-encoded values).
-- Returns 1 if this call completed the job, 0 if it was already COMPLETED, -1 if the record does not exist, -2 if
-- the guard field is set (nothing changed).
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return -1
end
if state == '"COMPLETED"' then
  return 0
end
if ARGV[1] ~= "" then
  local guard = redis.call("HGET", KEYS[1], ARGV[1])
  if guard and guard ~= "null" then
    return -2
  end
end
local ttl = tonumber(ARGV[2])
local entries = tonumber(ARGV[3])
local first_field = 4 + 2 * entries
redis.call("HSET", KEYS[1], unpack(ARGV, first_field))
redis.call("EXPIRE", KEYS[1], ttl)
if entries > 0 then
  redis.call("HSET", KEYS[2], unpack(ARGV, 4, first_field - 1))
  redis.call("EXPIRE", KEYS[2], ttl)
end
return 1
