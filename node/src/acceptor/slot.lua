-- Shared by prepare.lua and accept.lua: put in front of each when the node loads them.
-- A key's acceptor state is one hash: pc/pp/pi (promise), ac/ap/ai (accepted ballot) and
-- v (the value, absent if none). A ballot is three decimal strings compared as numbers.

-- -1, 0 or 1 as a is below, equal to or above b, comparing the parts as numbers in order.
local function cmp(a, b)
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    if x < y then return -1 end
    if x > y then return 1 end
  end
  return 0
end

-- The promise and the accepted ballot of the hash `key` (zero ballots when absent).
local function ballots(key)
  local h = redis.call('HMGET', key, 'pc', 'pp', 'pi', 'ac', 'ap', 'ai')
  return {h[1] or '0', h[2] or '0', h[3] or '0'}, {h[4] or '0', h[5] or '0', h[6] or '0'}
end

-- The refusal: a conflict carrying the higher of the promise and the accepted ballot.
local function conflict(promise, accepted)
  local beaten = promise
  if cmp(accepted, promise) > 0 then beaten = accepted end
  return {'conflict', beaten[1], beaten[2], beaten[3]}
end
