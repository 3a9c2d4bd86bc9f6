-- Add a session to its node's partition, idempotently.
-- Guarantees: the session hash, user index, user name and room indexes change
-- together (every key is under the partition's hash tag, so one slot); re-adding
-- a sid never double-counts.
-- KEYS[1] sessions hash of the partition
-- ARGV[1] partition tag, e.g. {rtctl:n:node-1}   ARGV[2] sid   ARGV[3] session JSON
local p, sid = ARGV[1], ARGV[2]
local session = cjson.decode(ARGV[3])
redis.call('HSET', KEYS[1], sid, ARGV[3])
if redis.call('SADD', p .. ':user:' .. session.user_id, sid) == 1 then
  redis.call('HINCRBY', p .. ':users', session.user_id, 1)
end
redis.call('HSET', p .. ':names', session.user_id, session.user_name)
for _, room in ipairs(session.rooms) do
  if redis.call('SADD', p .. ':room:' .. room, sid) == 1 then
    redis.call('HINCRBY', p .. ':rooms', room, 1)
  end
end
return 1
