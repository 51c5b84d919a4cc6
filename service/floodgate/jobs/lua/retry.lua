-- Ends a failed delivery with a retry: acks the entry and schedules its successor in the delayed
-- set, atomically (a crash can neither lose the job nor leave both), and only while the entry is
-- still pending for this consumer: a claim lost to a reclaimer must not fork two retry chains.
-- KEYS[1] stream, KEYS[2] delayed ZSET
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] due time (ms),
-- ARGV[5] the successor's fields as a JSON array
-- Returns 1 when the retry was scheduled, 0 when the entry was no longer ours.
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3]) == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
