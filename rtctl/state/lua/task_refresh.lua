-- The owner's heartbeat for its tasks: the partition holds exactly the tasks it runs.
-- Records it lacks (Redis restarted empty) are added back, records of tasks it no
-- longer runs are removed, and every expiry is extended.
-- KEYS[1] tasks hash   ARGV[1] partition tag   ARGV[2] expiry (ms)
-- ARGV[3..] triples: task id, task JSON, item id ('' for none)
-- Returns {added, removed}.
local p, ttl = ARGV[1], ARGV[2]
local running, added, removed = {}, 0, 0
for i = 3, #ARGV, 3 do
  local id, item = ARGV[i], ARGV[i + 2]
  running[id] = true
  if redis.call('HSETNX', KEYS[1], id, ARGV[i + 1]) == 1 then added = added + 1 end
  if item ~= '' then
    local k = p .. ':titem:' .. item
    redis.call('SADD', k, id)
    redis.call('PEXPIRE', k, ttl)
  end
end
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not running[id] then
    local task = cjson.decode(redis.call('HGET', KEYS[1], id))
    redis.call('HDEL', KEYS[1], id)
    if type(task.item_id) == 'string' then
      redis.call('SREM', p .. ':titem:' .. task.item_id, id)
    end
    removed = removed + 1
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {added, removed}
