-- Delete a document: counters, log and snapshot together.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string (one hash slot)
-- Returns 1 if the document existed, else 0.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return existed
