-- Mark a model as in use by a session until an expiry, and prune expired marks.
-- Guarantees: concurrent marks from many nodes never overwrite each other (one
-- sorted-set member per session); the set lives as long as its latest mark. The
-- session's own set of models lets its departure touch only its own marks.
-- KEYS[1] usage set of the model   KEYS[2] model index   KEYS[3] the session's models
-- (same hash slot)   ARGV[1] sid   ARGV[2] expiry (ms)   ARGV[3] now (ms)   ARGV[4] model
local function extend(key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or tonumber(ARGV[3]) + ttl < tonumber(ARGV[2]) then
    redis.call('PEXPIREAT', key, ARGV[2])
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
extend(KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
extend(KEYS[3])
return 1
