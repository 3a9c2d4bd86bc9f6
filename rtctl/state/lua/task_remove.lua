-- Remove a task from its owner's partition: the record, its item index entry, any
-- stop intent for it.
-- KEYS[1] tasks hash   ARGV[1] partition tag   ARGV[2] task id
-- Returns the removed record's JSON, or false if there was none.
local p, id = ARGV[1], ARGV[2]
local raw = redis.call('HGET', KEYS[1], id)
redis.call('DEL', p .. ':stop:' .. id)
if not raw then return false end
redis.call('HDEL', KEYS[1], id)
local task = cjson.decode(raw)
if type(task.item_id) == 'string' then
  redis.call('SREM', p .. ':titem:' .. task.item_id, id)
end
return raw
