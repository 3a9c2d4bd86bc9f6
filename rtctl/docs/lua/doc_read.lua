-- Read what a reader lacks, in one consistent view.
-- The snapshot and the whole log when the reader's epoch differs (or is '') or its
-- copy is older than the snapshot (after < base); else only the log after 'after'.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string
-- KEYS[4] clocks hash (one hash slot)
-- ARGV[1] after (seq the reader has)   ARGV[2] the reader's epoch or ''
-- ARGV[3] '1': the clock summary too (a compactor)
-- Returns nil when the document does not exist, else {epoch, seq, base, generation,
-- snapshot_bytes, log_bytes, full (1|0), snapshot ('' unless full), {updates…}}, and
-- when ARGV[3] is '1' one more: the summary as {client, end, …}, or nil when the
-- document has none that covers every seq.
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'base', 'generation',
  'snapshot_bytes', 'log_bytes', 'clocks_seq')
if not m[1] then return false end
local base = tonumber(m[3])
local after = tonumber(ARGV[1])
local full = ARGV[2] ~= m[1] or after < base
local snapshot, start = '', 0
if full then
  snapshot = redis.call('GET', KEYS[3]) or ''
else
  start = after - base
end
local updates = redis.call('LRANGE', KEYS[2], start, -1)
if ARGV[3] ~= '1' then
  return {m[1], m[2], m[3], m[4], m[5], m[6], full and 1 or 0, snapshot, updates}
end
local clocks = false
if m[7] == m[2] then clocks = redis.call('HGETALL', KEYS[4]) end
return {m[1], m[2], m[3], m[4], m[5], m[6], full and 1 or 0, snapshot, updates, clocks}
