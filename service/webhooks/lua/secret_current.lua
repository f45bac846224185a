-- The secrets that sign a tenant's deliveries now: the current one, stored from ARGV[1] if the tenant has none yet
-- (HSETNX, so concurrent first uses on any replicas create exactly one), then the previous one while its grace lasts.
-- A previous secret whose grace is over is removed.
-- KEYS: 1 tenant secrets HASH (current / previous / previous_until). ARGV: 1 candidate secret, 2 now (epoch s).
-- Returns {current} or {current, previous}.
redis.call("HSETNX", KEYS[1], "current", ARGV[1])
local fields = redis.call("HMGET", KEYS[1], "current", "previous", "previous_until")
if fields[2] then
  if fields[3] and tonumber(ARGV[2]) < tonumber(fields[3]) then
    return {fields[1], fields[2]}
  end
  redis.call("HDEL", KEYS[1], "previous", "previous_until")
end
return {fields[1]}
