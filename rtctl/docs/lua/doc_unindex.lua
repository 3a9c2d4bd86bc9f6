-- Drop an id from the document index, unless it was indexed again since it was read.
-- A writer creating a document indexes the id (a new score) before and after creating
-- it, so a removal that raced the creation never outlives it.
-- KEYS[1] index zset   ARGV[1] document id   ARGV[2] the score read (microseconds)
-- Returns 1 if removed, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
