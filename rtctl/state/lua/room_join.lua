-- Add a session to a room (ARGV[4] = '1') or remove it ('0'), keeping the record's
-- room list, the room set and the room count in step.
-- Guarantees: a sid absent from the partition (disconnected or reaped) is never
-- added back; joining or leaving twice changes nothing the second time.
-- KEYS[1] sessions hash   ARGV[1] partition tag   ARGV[2] sid   ARGV[3] room   ARGV[4] '1'|'0'
-- Returns 1 if membership changed, 0 if not, -1 if the session is unknown.
local p, sid, room = ARGV[1], ARGV[2], ARGV[3]
local raw = redis.call('HGET', KEYS[1], sid)
if not raw then return -1 end
local session = cjson.decode(raw)
local rooms, found = {}, false
for _, r in ipairs(session.rooms) do
  if r == room then found = true else rooms[#rooms + 1] = r end
end
if ARGV[4] == '1' then
  if found then return 0 end
  rooms[#rooms + 1] = room
  redis.call('SADD', p .. ':room:' .. room, sid)
  redis.call('HINCRBY', p .. ':rooms', room, 1)
else
  if not found then return 0 end
  redis.call('SREM', p .. ':room:' .. room, sid)
  if redis.call('HINCRBY', p .. ':rooms', room, -1) <= 0 then redis.call('HDEL', p .. ':rooms', room) end
end
session.rooms = rooms
if #rooms == 0 then session.rooms = cjson.empty_array end
redis.call('HSET', KEYS[1], sid, cjson.encode(session))
return 1
