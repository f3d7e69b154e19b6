-- Claim a student's cooling-off period for one prompt, unless another prompt holds it.
--
-- KEYS[1]   the student's cooldown key ("nudge id|claimed at ms")
-- ARGV[1]   the nudge id claiming it
-- ARGV[2]   now, ms
-- ARGV[3]   the period, ms (the key lives twice as long)
--
-- Returns nil when the claim is the caller's (new, or already its own); otherwise the value
-- of the claim that holds the period.
local held = redis.call('GET', KEYS[1])
if held then
  local holder, at = string.match(held, '^(.*)|(%d+)$')
  if holder == ARGV[1] then return false end
  if at and tonumber(ARGV[2]) - tonumber(at) < tonumber(ARGV[3]) then return held end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', tonumber(ARGV[3]) * 2)
return false
