-- Shared by prepare.lua, accept.lua and read.lua: put in front of each (after life.lua) when the
-- node loads them.
-- A key's acceptor state is one hash: pc/pp/pi (promise), ac/ap/ai (accepted ballot), hv ("1"
-- if a value is stored, "0" for none) and v (the value, "" when none). A ballot is three
-- decimal strings compared as numbers.
-- KEYS[1]: the key's hash; KEYS[2]: the acceptor's identity hash (cluster, acceptor, state,
-- mark, set, stamp). ARGV[1], ARGV[2]: the cluster id and acceptor id the caller expects.

-- The largest integer a double holds exactly (2^53 - 1): ballot parts above it are refused.
local MAX_EXACT = 9007199254740991

-- -1, 0 or 1 as a is below, equal to or above b, comparing the parts as numbers in order.
local function cmp(a, b)
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    if x < y then return -1 end
    if x > y then return 1 end
  end
  return 0
end

-- True if every part of the ballot is a decimal integer of at most 2^53 - 1.
local function exact(b)
  for i = 1, 3 do
    local s = b[i]
    if not string.match(s, '^%d+$') or string.len(s) > 16 or tonumber(s) > MAX_EXACT then
      return false
    end
  end
  return true
end

-- The acceptor's standing as the caller may count it ("member" or "recovering"), or nil and the
-- refusal when its identity record is missing (new or wiped Redis) or not the expected one
-- (foreign Redis). A record in state "member" counts as a member only while its stamp is this
-- Redis's current life (life.lua): after a restart or a wholesale restore the data may have
-- gone back in time, so it answers as recovering (stores, counts toward no quorum) until a
-- catch-up pass has brought it level. "initialising" (a cluster being set up) and
-- "recovering" never count.
local function standing()
  local id = redis.call('HMGET', KEYS[2], 'cluster', 'acceptor', 'state', 'stamp')
  if not id[1] then
    return nil, {'unmarked', 'missing'}
  end
  if id[1] ~= ARGV[1] or id[2] ~= ARGV[2] then
    return nil, {'unmarked', 'foreign', id[1], tostring(id[2])}
  end
  if id[3] == 'member' then
    if id[4] == life() then return 'member', nil end
    return 'recovering', nil
  end
  if id[3] == 'recovering' or id[3] == 'initialising' then
    return 'recovering', nil
  end
  return nil, {'unmarked', 'foreign', id[1], tostring(id[2])}
end

-- Whether a key's hash holds a value: "hv" says so; data written before "hv" existed keeps
-- its value in "v" alone, which is read as a value too (never as "no value": that would
-- turn every such key into a missing one).
local function has_value(hv, v)
  return hv == '1' or (not hv and v ~= false and v ~= nil)
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
