-- Extend the in-flight marker, but only if it still names this leader (compare and pexpire): a marker that expired
-- and was retaken by another request must keep that request's lifetime, not this one's.
-- KEYS: 1 in-flight leader marker. ARGV: 1 request id, 2 ttl ms. Returns 1 if extended.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[2]))
end
return 0
