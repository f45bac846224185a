-- Remove the in-flight marker, but only if it still names this leader (compare and delete): a marker that expired
-- and was retaken by another request must not be removed by the first one.
-- KEYS: 1 in-flight leader marker. ARGV: 1 request id. Returns 1 if removed.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
