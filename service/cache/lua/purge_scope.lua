-- Purge a scope in one atomic step: bump its generation (every cache key computed from now on differs from all
-- older ones, so older entries are unreachable at once, and writes planned earlier are refused by record.lua) and
-- take its member set. The caller then deletes the named entries, best-effort, only to free memory early.
-- KEYS: 1 scope member SET, 2 scope generation. Returns the cache keys the set named.
redis.call("INCR", KEYS[2])
local members = redis.call("SMEMBERS", KEYS[1])
redis.call("DEL", KEYS[1])
return members
