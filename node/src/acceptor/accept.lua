-- CASPaxos acceptor: accept(key, ballot, value, next_promise). Same rules as
-- src/acceptor/rules.rs::accept. Runs after slot.lua (cmp, ballots, conflict).
-- KEYS[1]: the key's hash. ARGV[1..3]: ballot; ARGV[4]: "1" if a value follows, "0" for none;
-- ARGV[5]: the value; ARGV[6..8]: next_promise (the proposer's next ballot, for one round trip).
-- Reply: {"ok"} or {"conflict", c, p, i}.
local promise, accepted = ballots(KEYS[1])
local ballot = {ARGV[1], ARGV[2], ARGV[3]}
local next_promise = {ARGV[6], ARGV[7], ARGV[8]}

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
return conflict(promise, accepted)
