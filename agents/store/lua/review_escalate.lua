-- Claim a review item for escalation, once, unless it is gone or decided, so that every
-- notifier that tries builds the same escalation record.
--
-- KEYS[1]   the item hash
-- KEYS[2]   the open-items zset
-- KEYS[3]   the team lead's queue zset
-- KEYS[4]   the review stage's recorded mark
-- ARGV[1]   the nudge id
-- ARGV[2]   the lead
-- ARGV[3]   escalated at (ISO time)
-- ARGV[4]   score in the lead's queue (ms)
--
-- Returns the stored {escalated_to, escalated_at}, whoever set them; nil when the item is
-- gone or decided.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[4]) == 1
   or redis.call('HEXISTS', KEYS[1], 'decided') == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
if redis.call('HSETNX', KEYS[1], 'escalated_to', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'escalated_at', ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return redis.call('HMGET', KEYS[1], 'escalated_to', 'escalated_at')
