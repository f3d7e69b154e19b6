-- Release a student's cooling-off period, only if the given prompt holds it.
--
-- KEYS[1]   the student's cooldown key
-- ARGV[1]   the nudge id that claimed it
--
-- Returns 1 if released, 0 otherwise.
local held = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. '|'
if held and string.sub(held, 1, string.len(mine)) == mine then
  return redis.call('DEL', KEYS[1])
end
return 0
