-- CASPaxos acceptor: accept(key, ballot, value, next_promise). Same rules as
-- src/acceptor/rules.rs::accept.
-- KEYS[1]: the key's hash. ARGV[1..3]: ballot; ARGV[4]: "1" if a value follows, "0" for none;
-- ARGV[5]: the value; ARGV[6..8]: next_promise (the proposer's next ballot, for one round trip).
-- Reply: {"ok"} or {"conflict", c, p, i}.
local h = redis.call('HMGET', KEYS[1], 'pc', 'pp', 'pi', 'ac', 'ap', 'ai')
local promise = {h[1] or '0', h[2] or '0', h[3] or '0'}
local accepted = {h[4] or '0', h[5] or '0', h[6] or '0'}
local ballot = {ARGV[1], ARGV[2], ARGV[3]}
local next_promise = {ARGV[6], ARGV[7], ARGV[8]}

local function cmp(a, b)
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    if x < y then return -1 end
    if x > y then return 1 end
  end
  return 0
end

if cmp(ballot, promise) >= 0 and cmp(ballot, accepted) > 0 then
  -- The promise never decreases: it becomes the higher of next_promise and the ballot.
  local p = next_promise
  if cmp(ballot, next_promise) > 0 then p = ballot end
  redis.call('HSET', KEYS[1], 'ac', ballot[1], 'ap', ballot[2], 'ai', ballot[3],
    'pc', p[1], 'pp', p[2], 'pi', p[3])
  if ARGV[4] == '1' then
    redis.call('HSET', KEYS[1], 'v', ARGV[5])
  else
    redis.call('HDEL', KEYS[1], 'v')
  end
  return {'ok'}
end
local beaten = promise
if cmp(accepted, promise) > 0 then beaten = accepted end
return {'conflict', beaten[1], beaten[2], beaten[3]}
