-- Forget departed sessions' usage marks: each session's own models only, never a scan
-- of every model. Guarantees: models left without marks leave the index; forgetting
-- twice is a no-op.
-- KEYS[1] model index   ARGV[1] prefix of a model's usage set   ARGV[2] prefix of a
-- session's set of models   ARGV[3..] sids   (all share KEYS[1]'s hash tag: one slot)
for i = 3, #ARGV do
  local sid = ARGV[i]
  local own = ARGV[2] .. sid
  for _, model in ipairs(redis.call('SMEMBERS', own)) do
    local key = ARGV[1] .. model
    redis.call('ZREM', key, sid)
    if redis.call('ZCARD', key) == 0 then redis.call('ZREM', KEYS[1], model) end
  end
  redis.call('DEL', own)
end
return 1
