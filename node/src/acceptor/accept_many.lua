-- CASPaxos acceptor: accept(ballot, value_k, next_promise) on many keys in one script run, for
-- the catch-up pass. Each key gets exactly what accept.lua does (same rules,
-- src/acceptor/rules.rs: admit once, then accept per key, one HSET per key). Atomic, one round
-- trip and one fsync for the batch. Runs after slot.lua.
-- KEYS[1]: the identity again (a placeholder: slot.lua's standing() reads KEYS[2]);
-- KEYS[2]: the identity; KEYS[3..]: the keys' hashes. ARGV[1..2]: expected cluster and
-- acceptor; ARGV[3..5]: ballot; ARGV[6..8]: next_promise; then two per key, in KEYS order:
-- has_value ("1"/"0") and the value ("" for none).
-- Reply: {"ok", state, then four fields per key: "ok", "0", "0", "0" (accepted) or
-- "conflict", c, p, i}, {"unmarked", why, ...} or {"invalid"} (nothing changed).
local state, refusal = standing()
if not state then return refusal end
local ballot = {ARGV[3], ARGV[4], ARGV[5]}
local next_promise = {ARGV[6], ARGV[7], ARGV[8]}
if not exact(ballot) or not exact(next_promise) then return {'invalid'} end
-- The promise never decreases: an accepted key's becomes the higher of next_promise and
-- the ballot (the same for every key).
local p = next_promise
if cmp(ballot, next_promise) > 0 then p = ballot end
local reply = {'ok', state}
local n = 2
for k = 3, #KEYS do
  local key = KEYS[k]
  local promise, accepted = ballots(key)
  if cmp(ballot, promise) >= 0 and cmp(ballot, accepted) > 0 then
    local a = 9 + 2 * (k - 3)
    local has_value, value = '0', ''
    if ARGV[a] == '1' then has_value, value = '1', ARGV[a + 1] end
    redis.call('HSET', key, 'ac', ballot[1], 'ap', ballot[2], 'ai', ballot[3],
      'pc', p[1], 'pp', p[2], 'pi', p[3], 'hv', has_value, 'v', value)
    reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = 'ok', '0', '0', '0'
  else
    local c = conflict(promise, accepted)
    reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = 'conflict', c[2], c[3], c[4]
  end
  n = n + 4
end
return reply
