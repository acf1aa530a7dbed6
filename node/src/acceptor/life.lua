-- Shared by slot.lua and identity.lua: put in front of each when the node loads them.
-- The LIFE of this Redis's data: the run id of the process (a new one after every restart,
-- whatever the restart loaded: a complete AOF, a truncated one, an old backup, another
-- volume) and how many commands that replace data wholesale it has run (FLUSHALL, RESTORE,
-- SWAPDB, DEL...: an old state restored while the same process runs). An identity record is
-- stamped with the life it was brought level under; a member whose stamp is not the current
-- life may have gone back in time and counts toward no quorum until a catch-up pass has
-- brought it level again (docs/design-acceptor-recovery.md, "Rollback").

-- Commands that can bring back, or take away, whole keys; anything else our scripts never
-- run on the identity or on the data. (DEBUG RELOAD is refused by Redis 7 unless
-- enable-debug-command is set; it is counted too.) REPLICAOF, SLAVEOF and FAILOVER are
-- counted because a full resync from a master replaces the whole dataset inside the same
-- process (the run id stays): a copy of an old state made a master of this Redis and then
-- detached would otherwise bring the old state back unnoticed.
local RESETS = {'flushall', 'flushdb', 'restore', 'restore%-asking', 'swapdb', 'move', 'copy',
  'rename', 'renamenx', 'del', 'unlink', 'migrate', 'debug', 'replicaof', 'slaveof',
  'failover'}

local function life()
  local info = redis.call('INFO', 'server', 'commandstats')
  local run = string.match(info, 'run_id:(%x+)') or '?'
  local resets = 0
  for _, name in ipairs(RESETS) do
    local calls = string.match(info, '\ncmdstat_' .. name .. ':calls=(%d+)')
    if calls then resets = resets + tonumber(calls) end
  end
  return run .. ':' .. resets
end
