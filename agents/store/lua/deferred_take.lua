-- Take up to a limit of deferred prompts that are due, leasing each to the caller: its score
-- moves to the lease's end, so no other notifier takes it meanwhile.
--
-- KEYS[1]   deferred zset (nudge id scored by due time, ms)
-- ARGV[1]   now, ms
-- ARGV[2]   end of the lease, ms
-- ARGV[3]   how many at most
--
-- Returns the nudge ids taken.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
