-- Rotate a tenant's Standard Webhooks secret in one step: the current secret (if any) becomes the previous one,
-- signing beside the new one until the grace expiry; a previous secret from an earlier rotation is dropped.
-- KEYS: 1 tenant secrets HASH (current / previous / previous_until). ARGV: 1 new secret, 2 previous_until (epoch s).
-- Returns 1 if an old secret became the previous one, 0 if the tenant had none.
local current = redis.call("HGET", KEYS[1], "current")
redis.call("HSET", KEYS[1], "current", ARGV[1])
if current then
  redis.call("HSET", KEYS[1], "previous", current, "previous_until", ARGV[2])
  return 1
end
redis.call("HDEL", KEYS[1], "previous", "previous_until")
return 0
