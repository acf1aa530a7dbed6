-- CASPaxos acceptor: prepare(key, ballot). Same rules as src/acceptor/rules.rs::prepare.
-- KEYS[1]: the key's hash. ARGV[1..3]: ballot counter, proposer, incarnation (decimal).
-- The hash holds pc/pp/pi (promise), ac/ap/ai (accepted ballot) and v (the value, absent if none).
-- Reply: {"ok", ac, ap, ai, has_value ("1"/"0"), value} or {"conflict", c, p, i}.
local h = redis.call('HMGET', KEYS[1], 'pc', 'pp', 'pi', 'ac', 'ap', 'ai', 'v')
local promise = {h[1] or '0', h[2] or '0', h[3] or '0'}
local accepted = {h[4] or '0', h[5] or '0', h[6] or '0'}
local ballot = {ARGV[1], ARGV[2], ARGV[3]}

-- -1, 0 or 1 as a is below, equal to or above b, comparing the parts as numbers in order.
local function cmp(a, b)
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    if x < y then return -1 end
    if x > y then return 1 end
  end
  return 0
end

if cmp(ballot, promise) > 0 and cmp(ballot, accepted) > 0 then
  redis.call('HSET', KEYS[1], 'pc', ballot[1], 'pp', ballot[2], 'pi', ballot[3])
  if h[7] then
    return {'ok', accepted[1], accepted[2], accepted[3], '1', h[7]}
  end
  return {'ok', accepted[1], accepted[2], accepted[3], '0', ''}
end
local beaten = promise
if cmp(accepted, promise) > 0 then beaten = accepted end
return {'conflict', beaten[1], beaten[2], beaten[3]}
