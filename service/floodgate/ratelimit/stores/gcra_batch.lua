-- A transcription of floodgate.ratelimit.gcra.decide() for a batch of requests; see that
-- function for the maths. Loaded by floodgate.ratelimit.stores.redis.RedisStore.
-- KEYS: the batch's counter keys, each once.
-- ARGV[1]: '' to use the server clock (production), or a time in microseconds (tests only).
-- ARGV[2]: the batch as space-separated integers (one string is far cheaper to send than many
--          arguments): per request its number of charges n, then n times
--          key index into KEYS, interval_us, capacity, cost, shadow (0|1).
-- Returns {now_us, then per charge: allowed (0|1), remaining, reset_us, retry_after_us}.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local spec = {}
for v in string.gmatch(ARGV[2], '%d+') do spec[#spec + 1] = tonumber(v) end
local tats = {}
local dirty = {}
local out = {now}
local pos = 1
while pos <= #spec do
  local n = spec[pos]
  pos = pos + 1
  local idx, ivl, cap, base, new, ok, shadow = {}, {}, {}, {}, {}, {}, {}
  local denied = false
  for i = 1, n do
    local k = spec[pos]
    idx[i] = k
    ivl[i] = spec[pos + 1]
    cap[i] = spec[pos + 2]
    local cost = spec[pos + 3]
    shadow[i] = spec[pos + 4] == 1
    pos = pos + 5
    local tat = tats[k]
    if tat == nil then
      local raw = redis.call('GET', KEYS[k])
      if raw then tat = tonumber(raw) else tat = 0 end
      tats[k] = tat
    end
    local b = now
    if tat > now then b = tat end
    base[i] = b
    new[i] = b + cost * ivl[i]
    ok[i] = new[i] - now <= cap[i] * ivl[i]
    if not ok[i] and not shadow[i] then denied = true end
  end
  for i = 1, n do
    local tolerance = cap[i] * ivl[i]
    local state = base[i]
    if ok[i] and not denied then
      state = new[i]
      tats[idx[i]] = state
      dirty[idx[i]] = true
    end
    local room = now + tolerance - state
    local remaining = 0
    if room > 0 then remaining = floordiv(room, ivl[i]) end
    local retry = 0
    if not ok[i] then retry = new[i] - now - tolerance end
    if ok[i] then out[#out + 1] = 1 else out[#out + 1] = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = state - now
    out[#out + 1] = retry
  end
end
for k, _ in pairs(dirty) do
  -- A key past its TAT means the same as no key: let Redis drop it then.
  local ttl_ms = math.ceil((tats[k] - now) / 1000)
  redis.call('SET', KEYS[k], string.format('%d', tats[k]), 'PX', string.format('%d', ttl_ms))
end
return out
