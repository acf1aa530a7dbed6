-- CASPaxos acceptor: prepare(key, ballot). Same rules as src/acceptor/rules.rs (admit, then
-- prepare). Runs after slot.lua (cmp, exact, standing, ballots, conflict).
-- KEYS[1]: the key's hash, KEYS[2]: the identity. ARGV[1..2]: expected cluster and acceptor;
-- ARGV[3..5]: ballot counter, proposer, incarnation (decimal).
-- Reply: {"ok", state, ac, ap, ai, has_value ("1"/"0"), value}, {"conflict", c, p, i},
-- {"unmarked", why, ...} (nothing changed) or {"invalid"} (a ballot beyond 2^53).
local state, refusal = standing()
if not state then return refusal end
local ballot = {ARGV[3], ARGV[4], ARGV[5]}
if not exact(ballot) then return {'invalid'} end
local promise, accepted = ballots(KEYS[1])

if cmp(ballot, promise) > 0 and cmp(ballot, accepted) > 0 then
  redis.call('HSET', KEYS[1], 'pc', ballot[1], 'pp', ballot[2], 'pi', ballot[3])
  local h = redis.call('HMGET', KEYS[1], 'hv', 'v')
  if has_value(h[1], h[2]) then
    return {'ok', state, accepted[1], accepted[2], accepted[3], '1', h[2]}
  end
  return {'ok', state, accepted[1], accepted[2], accepted[3], '0', ''}
end
return conflict(promise, accepted)
