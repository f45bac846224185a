-- Claim the rotation of an API key, atomically: refuse if it was already rotated or is revoked or expired at `now`,
-- otherwise end its life at the grace expiry and name its successor. Field values are JSON, as the store writes them.
-- KEYS: 1 API key HASH. ARGV: 1 now (epoch s), 2 new expires_at (JSON), 3 successor key id (JSON).
-- Returns {"ok"}, {"missing"}, {"revoked"}, {"expired"} or {"rotated", <successor already named (JSON)>}.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return {"missing"}
end
local fields = redis.call("HMGET", KEYS[1], "revoked_at", "expires_at", "rotated_to")
local function present(value)
  return value and value ~= "null"
end
if present(fields[1]) then
  return {"revoked"}
end
if present(fields[2]) and tonumber(ARGV[1]) >= tonumber(fields[2]) then
  return {"expired"}
end
if present(fields[3]) then
  return {"rotated", fields[3]}
end
redis.call("HSET", KEYS[1], "expires_at", ARGV[2], "rotated_to", ARGV[3])
return {"ok"}
