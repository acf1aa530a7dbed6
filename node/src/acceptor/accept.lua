-- CASPaxos acceptor: accept(key, ballot, value, next_promise). Same rules as
-- src/acceptor/rules.rs (admit, then accept). Runs after slot.lua.
-- KEYS[1]: the key's hash, KEYS[2]: the identity. ARGV[1..2]: expected cluster and acceptor;
-- ARGV[3..5]: ballot; ARGV[6]: "1" if a value follows, "0" for none; ARGV[7]: the value;
-- ARGV[8..10]: next_promise (the proposer's next ballot, for one round trip).
-- Reply: {"ok", state}, {"conflict", c, p, i}, {"unmarked", why, ...} or {"invalid"}.
local state, refusal = standing()
if not state then return refusal end
local ballot = {ARGV[3], ARGV[4], ARGV[5]}
local next_promise = {ARGV[8], ARGV[9], ARGV[10]}
if not exact(ballot) or not exact(next_promise) then return {'invalid'} end
local promise, accepted = ballots(KEYS[1])

if cmp(ballot, promise) >= 0 and cmp(ballot, accepted) > 0 then
  -- The promise never decreases: it becomes the higher of next_promise and the ballot.
  local p = next_promise
  if cmp(ballot, next_promise) > 0 then p = ballot end
  local hv, value = '0', ''
  if ARGV[6] == '1' then hv, value = '1', ARGV[7] end
  -- One write: no error between two commands can leave a new ballot with an old value.
  redis.call('HSET', KEYS[1], 'ac', ballot[1], 'ap', ballot[2], 'ai', ballot[3],
    'pc', p[1], 'pp', p[2], 'pi', p[3], 'hv', hv, 'v', value)
  return {'ok', state}
end
return conflict(promise, accepted)
