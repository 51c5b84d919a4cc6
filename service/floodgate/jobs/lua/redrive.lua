-- Moves dead letters back into the stream as fresh jobs (attempt 0), atomically per call.
-- KEYS[1] dead-letter stream, KEYS[2] stream
-- ARGV[1] MINID for trimming the stream by age, ARGV[2] now (ms), ARGV[3] batch size,
-- ARGV[4..] dead-letter entry ids (none: the oldest ARGV[3] dead letters)
-- Returns the number of dead letters moved.
local entries = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #found == 1 then
      entries[#entries + 1] = found[1]
    end
  end
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[3]))
end
for _, entry in ipairs(entries) do
  local fields = {}
  local raw = entry[2]
  for j = 1, #raw, 2 do
    fields[raw[j]] = raw[j + 1]
  end
  local job = {'XADD', KEYS[2], 'MINID', '~', ARGV[1], '*',
    'id', fields['id'] or '', 'type', fields['type'] or '', 'attempt', '0', 'enqueued_at', ARGV[2]}
  if fields['traceparent'] then
    job[#job + 1] = 'traceparent'
    job[#job + 1] = fields['traceparent']
  end
  redis.call(unpack(job))
  redis.call('XDEL', KEYS[1], entry[1])
end
return #entries
