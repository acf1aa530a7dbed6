-- Identity record of an acceptor (not a CASPaxos call; used by the membership task).
-- KEYS[1]: the identity hash. ARGV[1]: the operation:
--   "claim", cluster, acceptor, state, mark: write the record only if there is none;
--   "promote", cluster, acceptor, mark: recovering -> member, only for that exact mark;
--   "force", cluster, acceptor, state, mark: overwrite (the operator's accept-loss);
--   "inspect": nothing written.
-- Reply, always: {cluster, acceptor, state, mark, number of keys in the database}, with ""
-- for a missing field (the key count includes the identity itself when present).
local op = ARGV[1]
if op == 'claim' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], 'cluster', ARGV[2], 'acceptor', ARGV[3], 'state', ARGV[4],
      'mark', ARGV[5])
  end
elseif op == 'promote' then
  local id = redis.call('HMGET', KEYS[1], 'cluster', 'acceptor', 'state', 'mark')
  if id[1] == ARGV[2] and id[2] == ARGV[3] and id[3] == 'recovering' and id[4] == ARGV[4] then
    redis.call('HSET', KEYS[1], 'state', 'member')
  end
elseif op == 'force' then
  redis.call('HSET', KEYS[1], 'cluster', ARGV[2], 'acceptor', ARGV[3], 'state', ARGV[4],
    'mark', ARGV[5])
elseif op ~= 'inspect' then
  return redis.error_reply('unknown identity operation')
end
local id = redis.call('HMGET', KEYS[1], 'cluster', 'acceptor', 'state', 'mark')
return {id[1] or '', id[2] or '', id[3] or '', id[4] or '', tostring(redis.call('DBSIZE'))}
