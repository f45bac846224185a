-- Take a gateway upload URL for its one use: check it exists, has not expired and belongs to the caller's tenant
-- and world, sandbox or real (when the caller named them), then delete it and return what it holds, in one atomic step so two PUTs to the same
-- URL can never both pass. One key only, so the script runs on Redis Cluster as it is.
-- KEYS: 1 the upload grant HASH (tenant, sandbox "1" | "0", expires_ms, grant).
-- ARGV: 1 now ms, 2 the caller's tenant id ("" when the caller sent no key: the URL alone is the capability),
--       3 the caller's world: "1" sandbox, "0" real, "" (no key).
-- Returns {1, grant JSON, expires_ms} when taken, or {0, "missing" | "expired" | "forbidden"} (a forbidden grant stays).
local fields = redis.call("HMGET", KEYS[1], "tenant", "expires_ms", "grant", "sandbox")
if not fields[1] then
  return {0, "missing"}
end
if tonumber(fields[2]) <= tonumber(ARGV[1]) then
  redis.call("DEL", KEYS[1])
  return {0, "expired"}
end
if (ARGV[2] ~= "" and ARGV[2] ~= fields[1]) or (ARGV[3] ~= "" and ARGV[3] ~= (fields[4] or "0")) then
  return {0, "forbidden"}
end
redis.call("DEL", KEYS[1])
return {1, fields[3], fields[2]}
