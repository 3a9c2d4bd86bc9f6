-- Take the stop intents for some of this node's tasks: each intent found is consumed.
-- KEYS[1] tasks hash (places the script on the partition's slot)   ARGV[1] partition tag
-- ARGV[2..] task ids
-- Returns the ids that had an intent.
local p, found = ARGV[1], {}
for i = 2, #ARGV do
  if redis.call('DEL', p .. ':stop:' .. ARGV[i]) == 1 then found[#found + 1] = ARGV[i] end
end
return found
