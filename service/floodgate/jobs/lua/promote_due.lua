-- Moves every due delayed entry (up to ARGV[3]) into the stream in one atomic step, so workers that
-- all call it concurrently can never move one entry twice nor drop one.
-- KEYS[1] delayed ZSET (score: due time, ms; member: the entry's fields as a JSON array)
-- KEYS[2] stream
-- ARGV[1] now (ms), ARGV[2] MINID for trimming the stream by age, ARGV[3] most entries to move
-- Returns the number of entries moved.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', unpack(cjson.decode(member)))
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
