-- Append updates to a document's log, in order, each under the next sequence number.
-- Guarantees: seq grows by one per stored update and the log's index i holds seq
-- base+1+i; an update that would take snapshot + log past the bound is refused and
-- changes nothing (the others still go in); a document is only created when the
-- caller says it indexed the id first.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string (one hash slot)
-- ARGV[1] bound (bytes)   ARGV[2] '1': may create the document
-- ARGV[3] epoch for a new document   ARGV[4] now (seconds)   ARGV[5..] the updates
-- Returns {-1} when the document does not exist and ARGV[2] is not '1'; else
-- {1 if it created the document else 0, {seq or 0 (refused) per update},
--  {bytes stored before each update}}.
local bound = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'seq', 'snapshot_bytes', 'log_bytes')
local exists = m[1] and true or false
if not exists and ARGV[2] ~= '1' then return {-1} end
local seq, snapshot_bytes, log_bytes = 0, 0, 0
if exists then
  seq, snapshot_bytes, log_bytes = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
end
local created, seqs, stored = 0, {}, {}
for i = 5, #ARGV do
  local size = string.len(ARGV[i])
  stored[#stored + 1] = snapshot_bytes + log_bytes
  if snapshot_bytes + log_bytes + size > bound then
    seqs[#seqs + 1] = 0
  else
    if not exists then
      redis.call('DEL', KEYS[2], KEYS[3])  -- nothing should be there; a torn delete
      redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'base', '0', 'generation', '0',
        'snapshot_bytes', '0', 'created_at', ARGV[4])
      exists, created = true, 1
    end
    redis.call('RPUSH', KEYS[2], ARGV[i])
    seq = seq + 1
    log_bytes = log_bytes + size
    seqs[#seqs + 1] = seq
  end
end
if exists and (created == 1 or seq > tonumber(m[1])) then
  redis.call('HSET', KEYS[1], 'seq', string.format('%d', seq),
    'log_bytes', string.format('%d', log_bytes), 'updated_at', ARGV[4])
end
return {created, seqs, stored}
