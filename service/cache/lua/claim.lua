-- Decide, atomically, how a cacheable request is answered: from a cached result ("hit"), by attaching to an
-- identical request already in flight ("follow", with the leader's request id), or by becoming that leader ("lead",
-- marking itself in flight so later identical requests attach to it). Mode "only" never leads or follows
-- (only-if-cached): it answers "hit" or "miss".
-- KEYS: 1 cache entry; 2 in-flight leader marker. ARGV: 1 request id, 2 mode ("lookup" or "only"), 3 marker ttl ms.
local entry = redis.call("GET", KEYS[1])
if entry then
  return {"hit", entry}
end
if ARGV[2] == "only" then
  return {"miss"}
end
local leader = redis.call("GET", KEYS[2])
if leader then
  return {"follow", leader}
end
redis.call("SET", KEYS[2], ARGV[1], "PX", tonumber(ARGV[3]))
return {"lead"}
