-- Raise each raw feed's shared progress (never lower it), note when it last sent records (if
-- it did) and whether its owner has read everything waiting in it; return every feed's state.
--
-- KEYS[1]   feeds hash of the consumer group (field "{source}:{partition}")
-- ARGV      quadruples: feed field, progress (ms, or -1), wall time it last sent ('' if it
--           did not), caught up (1 or 0)
--
-- Returns the whole hash as HGETALL does: field, "progress:wall:caught_up", ...
for i = 1, #ARGV, 4 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local progress = tonumber(ARGV[i + 1])
  local wall = ARGV[i + 2]
  if current then
    local known, known_wall = string.match(current, '^(%-?%d+):([^:]*)')
    if tonumber(known) > progress then progress = tonumber(known) end
    if wall == '' then wall = known_wall end
  end
  if wall == '' then wall = '0' end
  redis.call('HSET', KEYS[1], ARGV[i],
    string.format('%d', progress) .. ':' .. wall .. ':' .. ARGV[i + 3])
end
return redis.call('HGETALL', KEYS[1])
