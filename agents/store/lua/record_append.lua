-- Append an intervention record once: the decided mark, the student's index and the outbox
-- move together, and the delivery's "sending" mark is cleared.
--
-- KEYS[1]   recorded mark of the record
-- KEYS[2]   the student's intervention list
-- KEYS[3]   the outbox list
-- KEYS[4]   the record's sending mark
-- ARGV[1]   the record, as JSON
--
-- Returns 1 if the record was appended, 0 if it had been before.
local added = redis.call('SET', KEYS[1], '1', 'NX')
if added then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
redis.call('DEL', KEYS[4])
if added then return 1 end
return 0
