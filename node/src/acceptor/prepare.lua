-- CASPaxos acceptor: prepare(key, ballot). Same rules as src/acceptor/rules.rs::prepare.
-- Runs after slot.lua (cmp, ballots, conflict).
-- KEYS[1]: the key's hash. ARGV[1..3]: ballot counter, proposer, incarnation (decimal).
-- Reply: {"ok", ac, ap, ai, has_value ("1"/"0"), value} or {"conflict", c, p, i}.
local promise, accepted = ballots(KEYS[1])
local ballot = {ARGV[1], ARGV[2], ARGV[3]}

if cmp(ballot, promise) > 0 and cmp(ballot, accepted) > 0 then
  redis.call('HSET', KEYS[1], 'pc', ballot[1], 'pp', ballot[2], 'pi', ballot[3])
  local value = redis.call('HGET', KEYS[1], 'v')
  if value then
    return {'ok', accepted[1], accepted[2], accepted[3], '1', value}
  end
  return {'ok', accepted[1], accepted[2], accepted[3], '0', ''}
end
return conflict(promise, accepted)
