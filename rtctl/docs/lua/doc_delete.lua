-- Delete a document: counters, log, snapshot and clock summary together.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string
-- KEYS[4] clocks hash   KEYS[5] recent writes zset (one hash slot)
-- Returns 1 if the document existed, else 0.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return existed
