-- Forget departed sessions' usage marks on every model.
-- Guarantees: models left without marks leave the index; forgetting twice is a no-op.
-- KEYS[1] model index   ARGV[1] prefix of a model's usage set   ARGV[2..] sids
-- (the usage sets share KEYS[1]'s hash tag, hence one slot)
local sids = {}
for i = 2, #ARGV do sids[#sids + 1] = ARGV[i] end
for _, model in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. model
  redis.call('ZREM', key, unpack(sids))
  if redis.call('ZCARD', key) == 0 then redis.call('ZREM', KEYS[1], model) end
end
return 1
