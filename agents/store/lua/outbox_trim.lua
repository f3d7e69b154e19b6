-- Trim what was just published from the head of the outbox, and keep the lock, only while
-- the lock is still the caller's: a holder whose lock ran out must not remove what the next
-- holder has read.
--
-- KEYS[1]   the outbox list
-- KEYS[2]   the outbox lock
-- ARGV[1]   the caller's lock token
-- ARGV[2]   how many records were published
-- ARGV[3]   the lock's new lifetime, ms
--
-- Returns 1 if trimmed, 0 if the lock was no longer the caller's.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
