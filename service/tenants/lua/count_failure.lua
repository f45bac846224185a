-- Count one failed authentication from a source in the current window; the key expires with the window.
-- KEYS[1] counter; ARGV[1] window ms. Returns the count including this failure.
local count = redis.call("INCR", KEYS[1])
if count == 1 then
  redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[1]))
end
return count
