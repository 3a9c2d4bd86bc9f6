-- Stamp a dead node's partition with a reaper's fencing token before sweeping it.
-- Guarantees: a claim only moves to a larger token, so of two reapers the one with
-- the newer lease wins and the other's batches (session_remove.lua) do nothing.
-- KEYS[1] the partition's claim key   ARGV[1] fencing token   ARGV[2] ttl (ms)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
