-- Mark a model as in use by a session until an expiry, and prune expired marks.
-- Guarantees: concurrent marks from many nodes never overwrite each other (one
-- sorted-set member per session); the set lives as long as its latest mark.
-- KEYS[1] usage set of the model   KEYS[2] model index   (same hash slot)
-- ARGV[1] sid   ARGV[2] expiry (ms)   ARGV[3] now (ms)   ARGV[4] model
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or tonumber(ARGV[3]) + ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
