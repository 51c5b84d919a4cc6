-- Ends a delivery for good: acks the entry and appends it to the dead-letter stream, atomically,
-- and only while the entry is still pending for this consumer.
-- KEYS[1] stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] MINID for trimming dead letters by
-- age, ARGV[5..] the dead letter's fields (name, value, ...)
-- Returns 1 when dead-lettered, 0 when the entry was no longer ours.
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3]) == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[4], '*', unpack(ARGV, 5))
return 1
