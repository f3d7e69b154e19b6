-- Put a nudge in the review queue once: the first call writes the item and indexes it in its
-- queue and among the open items; later calls change nothing.
--
-- KEYS[1]   the item hash
-- KEYS[2]   the queue zset
-- KEYS[3]   the open-items zset
-- ARGV[1]   the item, as JSON
-- ARGV[2]   its score (ms)
-- ARGV[3]   the nudge id
--
-- Returns the item hash as HGETALL does.
if redis.call('HSETNX', KEYS[1], 'item', ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
