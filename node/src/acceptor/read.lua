-- CASPaxos acceptor: read(key), for quorum reads. Same rule as src/acceptor/rules.rs (admit,
-- then report the accepted ballot and value). Runs after slot.lua, behind the `no-writes`
-- flag the node puts in front: Redis refuses any write inside, so the script promises
-- nothing, changes nothing and gives the AOF nothing to append or fsync.
-- KEYS[1]: the key's hash, KEYS[2]: the identity. ARGV[1..2]: expected cluster and acceptor.
-- Reply: {"ok", state, ac, ap, ai, has_value ("1"/"0"), value} (the zero ballot and no value
-- for a key never accepted) or {"unmarked", why, ...}.
local state, refusal = standing()
if not state then return refusal end
local h = redis.call('HMGET', KEYS[1], 'ac', 'ap', 'ai', 'hv', 'v')
if has_value(h[4], h[5]) then
  return {'ok', state, h[1] or '0', h[2] or '0', h[3] or '0', '1', h[5] or ''}
end
return {'ok', state, h[1] or '0', h[2] or '0', h[3] or '0', '0', ''}
