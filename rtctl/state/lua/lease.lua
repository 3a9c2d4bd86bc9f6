-- Take or renew a named lease, returning its fencing token.
-- Guarantees: one holder at a time; a new holder gets a strictly larger token than
-- every earlier one (the counter only grows), so work stamped with an old token can
-- be refused; renewing keeps the token. Returns 0 when another holder has it.
-- KEYS[1] lease   KEYS[2] fencing counter (same hash slot)
-- ARGV[1] holder   ARGV[2] time to live (ms)
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return redis.call('INCR', KEYS[2])
elseif current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return 0
