-- Removes a consumer from the group, but only when it holds no pending entries: DELCONSUMER drops
-- a consumer's pending entries from the group for good, so a consumer that still has some stays
-- until a reclaimer has taken them over.
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer
-- Returns 1 when the consumer was removed, 0 when it still holds pending entries.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
