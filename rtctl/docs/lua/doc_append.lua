-- Append updates to a document's log, in order, each under the next sequence number,
-- and raise its clock summary by the clocks of the stored ones.
-- Guarantees: seq grows by one per stored update and the log's index i holds seq
-- base+1+i; an update that would take snapshot + log past the bound is refused and
-- changes nothing (the others still go in); a document is only created when the
-- caller says it indexed the id first. The summary (KEYS[4]) is trusted while meta's
-- clocks_seq equals seq: an update with unknown clocks ('!') ends it for the epoch.
-- KEYS[1] meta hash   KEYS[2] log list   KEYS[3] snapshot string
-- KEYS[4] clocks hash (Yjs client id -> highest clock + 1; one hash slot)
-- KEYS[5] writes zset: write key of a recent append -> its seq (the last WRITES_KEPT)
-- ARGV[1] bound (bytes)   ARGV[2] '1': may create the document
-- ARGV[3] epoch for a new document   ARGV[4] now (seconds)   ARGV[5..4+n] the updates
-- ARGV[5+n..4+2n] their clocks: 'client end client end …' (decimal), or '!': unknown
-- ARGV[5+2n..4+3n] their write keys ('' for none): an update whose key is among the
-- recent writes is not stored again and gets the seq it was stored under (an append
-- that timed out on its caller but ran, then was tried again, is stored once)
-- Returns {-1} when the document does not exist and ARGV[2] is not '1'; else
-- {1 if it created the document else 0, {seq or 0 (refused) per update},
--  {bytes stored before each update}}.
local bound = tonumber(ARGV[1])
local n = (#ARGV - 4) / 3
local WRITES_KEPT = 4096
local m = redis.call('HMGET', KEYS[1], 'seq', 'snapshot_bytes', 'log_bytes', 'clocks_seq')
local exists = m[1] and true or false
if not exists and ARGV[2] ~= '1' then return {-1} end
local seq, snapshot_bytes, log_bytes = 0, 0, 0
local summary = true  -- a new document starts one
if exists then
  seq, snapshot_bytes, log_bytes = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
  summary = m[4] == m[1]
end
-- client ids stay strings (53 bits: past a Lua number's exact integers in general);
-- clocks are compared as numbers (small)
local ends, texts = {}, {}
local created, seqs, stored = 0, {}, {}
local wrote = false
for i = 5, 4 + n do
  local size = string.len(ARGV[i])
  stored[#stored + 1] = snapshot_bytes + log_bytes
  local wkey = ARGV[i + 2 * n]
  local again = exists and wkey ~= '' and redis.call('ZSCORE', KEYS[5], wkey)
  if again then
    seqs[#seqs + 1] = tonumber(again)
  elseif snapshot_bytes + log_bytes + size > bound then
    seqs[#seqs + 1] = 0
  else
    if not exists then
      redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])  -- nothing should be there
      redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'base', '0', 'generation', '0',
        'snapshot_bytes', '0', 'created_at', ARGV[4])
      exists, created = true, 1
    end
    redis.call('RPUSH', KEYS[2], ARGV[i])
    seq = seq + 1
    if wkey ~= '' then
      redis.call('ZADD', KEYS[5], seq, wkey)
      wrote = true
    end
    log_bytes = log_bytes + size
    seqs[#seqs + 1] = seq
    local clocks = ARGV[i + n]
    if clocks == '!' then
      summary = false
    elseif summary then
      for client, text in string.gmatch(clocks, '(%d+) (%d+)') do
        local clock = tonumber(text)
        if not ends[client] or clock > ends[client] then
          ends[client], texts[client] = clock, text
        end
      end
    end
  end
end
if exists and (created == 1 or seq > tonumber(m[1])) then
  if summary then
    for client, clock in pairs(ends) do
      local had = redis.call('HGET', KEYS[4], client)
      if not had or clock > tonumber(had) then
        redis.call('HSET', KEYS[4], client, texts[client])
      end
    end
    redis.call('HSET', KEYS[1], 'seq', string.format('%d', seq),
      'log_bytes', string.format('%d', log_bytes), 'updated_at', ARGV[4],
      'clocks_seq', string.format('%d', seq))
  else
    if m[4] then
      redis.call('HDEL', KEYS[1], 'clocks_seq')
      redis.call('DEL', KEYS[4])
    end
    redis.call('HSET', KEYS[1], 'seq', string.format('%d', seq),
      'log_bytes', string.format('%d', log_bytes), 'updated_at', ARGV[4])
  end
end
if wrote and redis.call('ZCARD', KEYS[5]) > WRITES_KEPT then
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(WRITES_KEPT + 1))
end
return {created, seqs, stored}
