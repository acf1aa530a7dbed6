-- Identity record of an acceptor (not a CASPaxos call; used by the membership task). Runs
-- after life.lua.
-- KEYS[1]: the identity hash: cluster, acceptor, state ("initialising", "member",
-- "recovering"), mark, set (the acceptor set the cluster was made with), stamp (the life
-- under which it was last brought level), lease_node, lease_until and lease_life (who runs its
-- catch-up pass, until when, in ms of the Redis clock, taken under which life). ARGV[1]: the operation:
--   "claim", cluster, acceptor, state, mark, set: write the record only if there is none
--     (stamped with the current life);
--   "replace", over, cluster, acceptor, state, mark, set: write the record in place of an
--     "initialising" record of cluster `over` for the same acceptor, stamped with the current
--     life (it never counted: two initialisations raced), stamped with the current life;
--   "join", cluster, acceptor, life: initialising -> member, only while its stamp is the
--     current life (it has lost nothing since it was claimed, and never counted before) and
--     that life is the one the deciding inspection saw (a stale join never lands on a record
--     claimed after a wipe);
--   "suspect", cluster, acceptor, mark: a member record whose stamp is not the current life,
--     or any initialising record, becomes recovering with this new mark;
--   "promote", cluster, acceptor, mark, life: recovering -> member, only for that exact mark
--     and only if the life is still the one the catch-up pass started under (stamped);
--   "lease", node, ms: the catch-up lease: taken by `node` for `ms` if free, expired, taken
--     under another life (the Redis restarted or was restored since: the pass it guarded is
--     void anyway) or its own; the reply's last field names the holder;
--   "force", cluster, acceptor, state, mark, set: overwrite (the operator's accept-loss);
--   "inspect": nothing written.
-- Reply, always: {cluster, acceptor, state, mark, set, stamp, life, number of keys in the
-- database, lease holder}, with "" for a missing field (the key count includes the identity
-- itself when present).
local op = ARGV[1]
local now_life = life()
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id = redis.call('HMGET', KEYS[1], 'cluster', 'acceptor', 'state', 'mark', 'stamp')
local ours = id[1] == ARGV[2] and id[2] == ARGV[3]
if op == 'claim' then
  if not id[1] then
    redis.call('HSET', KEYS[1], 'cluster', ARGV[2], 'acceptor', ARGV[3], 'state', ARGV[4],
      'mark', ARGV[5], 'set', ARGV[6], 'stamp', now_life)
  end
elseif op == 'replace' then
  if id[1] == ARGV[2] and id[2] == ARGV[4] and id[3] == 'initialising' and id[5] == now_life then
    redis.call('HSET', KEYS[1], 'cluster', ARGV[3], 'acceptor', ARGV[4], 'state', ARGV[5],
      'mark', ARGV[6], 'set', ARGV[7], 'stamp', now_life)
  end
elseif op == 'join' then
  if ours and id[3] == 'initialising' and id[5] == now_life and ARGV[4] == now_life then
    redis.call('HSET', KEYS[1], 'state', 'member')
  end
elseif op == 'suspect' then
  if ours and ((id[3] == 'member' and id[5] ~= now_life) or id[3] == 'initialising') then
    redis.call('HSET', KEYS[1], 'state', 'recovering', 'mark', ARGV[4])
  end
elseif op == 'promote' then
  if ours and id[3] == 'recovering' and id[4] == ARGV[4] and ARGV[5] == now_life then
    redis.call('HSET', KEYS[1], 'state', 'member', 'stamp', now_life)
  end
elseif op == 'lease' then
  local lease = redis.call('HMGET', KEYS[1], 'lease_node', 'lease_until', 'lease_life')
  local now = now_ms()
  if id[1] and (not lease[1] or lease[1] == ARGV[2] or tonumber(lease[2] or '0') < now
      or lease[3] ~= now_life) then
    redis.call('HSET', KEYS[1], 'lease_node', ARGV[2], 'lease_until', now + tonumber(ARGV[3]),
      'lease_life', now_life)
  end
elseif op == 'force' then
  redis.call('HSET', KEYS[1], 'cluster', ARGV[2], 'acceptor', ARGV[3], 'state', ARGV[4],
    'mark', ARGV[5], 'set', ARGV[6], 'stamp', now_life)
elseif op ~= 'inspect' then
  return redis.error_reply('unknown identity operation')
end
local r = redis.call('HMGET', KEYS[1], 'cluster', 'acceptor', 'state', 'mark', 'set', 'stamp',
  'lease_node', 'lease_until', 'lease_life')
local holder = ''
if r[7] and tonumber(r[8] or '0') >= now_ms() and r[9] == now_life then holder = r[7] end
return {r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or '', r[6] or '', now_life,
  tostring(redis.call('DBSIZE')), holder}
