-- Replace the snapshot and drop the log entries it now covers, if nothing compacted
-- (or deleted) the document since the compactor read it.
-- Guarantees: only when epoch and generation are those read; exactly the compacted
-- entries (seq base+1 .. ARGV[3]) leave the log, entries appended meanwhile stay.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string (one hash slot)
-- (KEYS[4], the clock summary, stays as it is: it covers the snapshot too)
-- ARGV[1] epoch   ARGV[2] generation   ARGV[3] last seq compacted   ARGV[4] new snapshot
-- ARGV[5] bytes of the compacted log entries   ARGV[6] now (seconds)
-- Returns {generation, snapshot_bytes, log_bytes} after it (nothing written when it
-- has nothing to compact: ARGV[3] is the base); {-1} when the document changed
-- (nothing written); {-2} when the log is not as the counters say.
local m = redis.call('HMGET', KEYS[1], 'epoch', 'generation', 'base', 'seq',
  'snapshot_bytes', 'log_bytes')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return {-1} end
local base, upto = tonumber(m[3]), tonumber(ARGV[3])
local count = upto - base
if count == 0 then return {tonumber(m[2]), tonumber(m[5]), tonumber(m[6])} end
if count < 0 or upto > tonumber(m[4]) or redis.call('LLEN', KEYS[2]) < count then
  return {-2}
end
redis.call('LTRIM', KEYS[2], count, -1)
redis.call('SET', KEYS[3], ARGV[4])
local log_bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', 0 - tonumber(ARGV[5]))
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
local size = string.len(ARGV[4])
redis.call('HSET', KEYS[1], 'base', ARGV[3], 'snapshot_bytes', tostring(size),
  'updated_at', ARGV[6])
return {generation, size, log_bytes}
