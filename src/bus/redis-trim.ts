import type { Redis } from "ioredis";

/**
 * Bus.trimDelivered on Redis, as one script so that no delivery or ack slips in between reading
 * the groups and trimming: the smallest id some group still needs (its oldest pending entry, else
 * the id after its last delivered one) becomes XTRIM MINID, exact. Ids are compared as
 * (milliseconds, sequence), both well within a Lua double.
 */
const SCRIPT = `
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local keepMs, keepSeq = nil, nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local ms, seq
  if tonumber(info['pending']) > 0 then
    ms, seq = parse(redis.call('XPENDING', KEYS[1], info['name'])[2])
  else
    ms, seq = parse(info['last-delivered-id'])
    seq = seq + 1
  end
  if keepMs == nil or ms < keepMs or (ms == keepMs and seq < keepSeq) then keepMs, keepSeq = ms, seq end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', keepMs, keepSeq))
`;

export const runTrimDelivered = async (redis: Redis, stream: string): Promise<number> => {
  try {
    return Number(await redis.eval(SCRIPT, 1, stream));
  } catch (error) {
    // A stream that does not exist has no groups and nothing to trim.
    if (error instanceof Error && /no such key/i.test(error.message)) return 0;
    throw error;
  }
};
