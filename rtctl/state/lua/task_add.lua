-- Record a task in its owner's partition, with its item index; both expire unless the
-- owner refreshes them (lua/task_refresh.lua), so a dead owner's tasks go by themselves.
-- KEYS[1] tasks hash   ARGV[1] partition tag   ARGV[2] task id   ARGV[3] task JSON
-- ARGV[4] item id ('' for none)   ARGV[5] expiry (ms)
local p, id = ARGV[1], ARGV[2]
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if ARGV[4] ~= '' then
  local k = p .. ':titem:' .. ARGV[4]
  redis.call('SADD', k, id)
  redis.call('PEXPIRE', k, ARGV[5])
end
return 1
