-- Revoke every token of a user issued before a cutoff.
-- Guarantees: the stored cutoff only moves forward, so a late or replayed older
-- revocation never shortens a newer one.
-- KEYS[1] revoked-users hash   ARGV[1] user id   ARGV[2] cutoff (seconds, float)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
