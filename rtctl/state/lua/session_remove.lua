-- Remove sessions from one node's partition with all their memberships.
-- Guarantees: each record is read and its memberships removed in one step, so a
-- concurrent room join never leaves a stale membership; counts stay equal to set
-- sizes (a count reaching 0 is deleted); removing an absent sid is a no-op. With a
-- fencing token (the reaper), nothing is removed unless the partition's claim still
-- holds that token: a reaper that lost its lease can no longer delete anything.
-- KEYS[1] sessions hash   ARGV[1] partition tag   ARGV[2] fencing token or ''
-- ARGV[3..] sids
-- Returns the removed session JSON records (an empty table if none, or if fenced off).
local p = ARGV[1]
if ARGV[2] ~= '' and redis.call('GET', p .. ':reaper') ~= ARGV[2] then return {} end
local function dec(counts, field)
  if redis.call('HINCRBY', counts, field, -1) <= 0 then
    redis.call('HDEL', counts, field)
    return true
  end
  return false
end
local removed = {}
for i = 3, #ARGV do
  local sid = ARGV[i]
  local raw = redis.call('HGET', KEYS[1], sid)
  if raw then
    local session = cjson.decode(raw)
    redis.call('HDEL', KEYS[1], sid)
    if redis.call('SREM', p .. ':user:' .. session.user_id, sid) == 1 then
      if dec(p .. ':users', session.user_id) then redis.call('HDEL', p .. ':names', session.user_id) end
    end
    for _, room in ipairs(session.rooms) do
      if redis.call('SREM', p .. ':room:' .. room, sid) == 1 then dec(p .. ':rooms', room) end
    end
    removed[#removed + 1] = raw
  end
end
return removed
