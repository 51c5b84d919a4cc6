-- Renews the claims of running jobs: resets the idle time of the entries still pending for this
-- consumer (XCLAIM min-idle 0 JUSTID, which leaves the delivery count alone), and never takes back
-- an entry another consumer has reclaimed meanwhile.
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids that are no longer pending for this consumer.
local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
local lost = {}
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then
    claim[#claim + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #claim > 5 then
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return lost
