-- CASPaxos acceptor: prepare(ballot) on many keys in one script run, for the catch-up pass.
-- Each key gets exactly what prepare.lua does (same rules, src/acceptor/rules.rs: admit once,
-- then prepare per key). The script is atomic, so one identity check covers every key; one
-- round trip and one fsync (Redis appends the whole run at once) serve the batch. Runs after
-- life.lua and slot.lua.
-- KEYS[1]: the identity again (a placeholder: slot.lua's standing() reads KEYS[2]);
-- KEYS[2]: the identity; KEYS[3..]: the keys' hashes. ARGV[1..2]: expected cluster and
-- acceptor; ARGV[3..5]: ballot counter, proposer, incarnation (decimal).
-- Reply: {"ok", state, then six fields per key: "ok", ac, ap, ai, has_value, value (promised)
-- or "conflict", c, p, i, "0", ""}, {"unmarked", why, ...} or {"invalid"} (nothing changed).
local state, refusal = standing()
if not state then return refusal end
local ballot = {ARGV[3], ARGV[4], ARGV[5]}
if not exact(ballot) then return {'invalid'} end
local reply = {'ok', state}
local n = 2
for k = 3, #KEYS do
  local key = KEYS[k]
  -- One read per key: the ballots (as slot.lua's ballots()) and the value.
  local h = redis.call('HMGET', key, 'pc', 'pp', 'pi', 'ac', 'ap', 'ai', 'hv', 'v')
  local promise = {h[1] or '0', h[2] or '0', h[3] or '0'}
  local accepted = {h[4] or '0', h[5] or '0', h[6] or '0'}
  if cmp(ballot, promise) > 0 and cmp(ballot, accepted) > 0 then
    redis.call('HSET', key, 'pc', ballot[1], 'pp', ballot[2], 'pi', ballot[3])
    -- A value stored before "hv" existed counts as a value (slot.lua's has_value).
    local hv, value = '0', ''
    if has_value(h[7], h[8]) then hv, value = '1', h[8] end
    reply[n + 1], reply[n + 2], reply[n + 3] = 'ok', accepted[1], accepted[2]
    reply[n + 4], reply[n + 5], reply[n + 6] = accepted[3], hv, value
  else
    local c = conflict(promise, accepted)
    reply[n + 1], reply[n + 2], reply[n + 3] = 'conflict', c[2], c[3]
    reply[n + 4], reply[n + 5], reply[n + 6] = c[4], '0', ''
  end
  n = n + 6
end
return reply
