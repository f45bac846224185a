-- Record a cache key in its scope's member set, but only if the key was computed under the scope's current
-- generation: once a purge has bumped the generation, an entry planned before it must not be written at all.
-- The set's lifetime is raised to at least the entry's, so it outlives every entry it names.
-- KEYS: 1 scope member SET, 2 scope generation. ARGV: 1 cache key, 2 its generation, 3 entry ttl s.
-- Returns 1 if recorded (the caller then writes the entry), 0 if the generation moved on (write nothing).
if tonumber(redis.call("GET", KEYS[2]) or "0") ~= tonumber(ARGV[2]) then
  return 0
end
redis.call("SADD", KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[3])
if redis.call("TTL", KEYS[1]) < ttl then
  redis.call("EXPIRE", KEYS[1], ttl)
end
return 1
