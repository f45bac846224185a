-- Give claimed entries of a lease schedule back, due now (a replica shutting down hands its unfinished work over).
-- An entry is re-scored only while it still carries the lease score its claim gave it: if the lease ran out and
-- another replica claimed it, or the claimer's own work rescheduled or finished it, it is left alone.
-- KEYS[1] due ZSET; ARGV[1] the new due time (now, epoch ms); ARGV[2..] pairs: id, the lease score of its claim.
-- Returns how many entries were given back.
local released = 0
for i = 2, #ARGV, 2 do
  local score = redis.call("ZSCORE", KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call("ZADD", KEYS[1], "XX", ARGV[1], ARGV[i])
    released = released + 1
  end
end
return released
