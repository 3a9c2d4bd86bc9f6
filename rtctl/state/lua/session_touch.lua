-- Refresh a session's last-seen time, only if the session still exists.
-- Guarantees: a heartbeat racing a disconnect or the reaper never resurrects the
-- session (the record is rewritten only when present).
-- KEYS[1] sessions hash   ARGV[1] sid   ARGV[2] last_seen_at (seconds, float)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local session = cjson.decode(raw)
session.last_seen_at = tonumber(ARGV[2])
if #session.rooms == 0 then session.rooms = cjson.empty_array end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(session))
return 1
