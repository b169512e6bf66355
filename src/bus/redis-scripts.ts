import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { BusError } from "./bus.ts";

/**
 * Every Lua script RedisBus runs, in one place (as BullMQ keeps its scripts). Each runs by
 * EVALSHA; a Redis that lost its scripts (restart, SCRIPT FLUSH) gets the script loaded and the
 * call fails as `unavailable` with cause SCRIPT_RELOADED: nothing ran, so a caller still waiting
 * may run it again at once (never behind the back of one that gave up, see redis-bus.ts).
 *
 * Arguments travel as one array (ioredis flattens it), never spread into a call: a commit of a
 * whole 100,000-seed layer has over a million arguments, and a spread that long is a RangeError.
 */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

const script = (name: string, source: string): Script => ({ name, source, sha: createHash("sha1").update(source).digest("hex") });

/** Field names a dead letter adds (dead-letters.ts); an original field of that name is kept as `orig:` + name. */
const LETTER_HELPERS = `
local RESERVED = { stream = true, id = true, code = true, error = true, deliveries = true, failed_at = true }
-- Lua unpacks at most ~8000 values in one call; a letter keeps an entry's first 3000 fields.
local MAX_LETTER_FIELDS = 3000
local function letter(src, id, info)
  local out = {}
  local found = redis.call('XRANGE', src, id, id)
  if #found > 0 then
    local f = found[1][2]
    local n = math.min(#f, 2 * MAX_LETTER_FIELDS)
    for i = 1, n, 2 do
      local name = f[i]
      if RESERVED[name] or string.sub(name, 1, 5) == 'orig:' then name = 'orig:' .. name end
      out[#out + 1] = name
      out[#out + 1] = f[i + 1]
    end
    if #f > n then
      out[#out + 1] = 'orig:fields_dropped'
      out[#out + 1] = tostring((#f - n) / 2)
    end
  end
  for _, pair in ipairs(info) do
    out[#out + 1] = pair[1]
    out[#out + 1] = pair[2]
  end
  return out
end
`;

/**
 * An atomic commit. MULTI/EXEC runs every queued command even when one fails at run time (an
 * XADD to a key holding a hash), leaving the others applied, so a commit is one script instead:
 * it checks the type of every key it will write, and every precondition (`absent`, `expect`),
 * before its first write. Redis runs a script atomically, and refuses a script's first write,
 * never a later one, under maxmemory, so nothing can fail between the first write and the last.
 *
 * KEYS[k] is op k's key; ARGV is, per op, its kind, its argument count, then its arguments.
 * Returns the ids of the XADDs and dead letters, in order.
 */
export const COMMIT = script(
  "commit",
  `${LETTER_HELPERS}
local wants = { xadd = 'stream', hset = 'hash', xack = 'stream', xdel = 'stream', absent = 'hash', expect = 'hash', rotate = 'hash', deadletter = 'stream' }
local types = {}
local function typeOf(key)
  local t = types[key]
  if t == nil then t = redis.call('TYPE', key)['ok'] end
  return t
end
local function wrong(kind, key)
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value (' .. kind .. ' ' .. key .. ')')
end
local ops = {}
local at = 1
for k = 1, #KEYS do
  local kind, argc = ARGV[at], tonumber(ARGV[at + 1])
  local key = KEYS[k]
  local t = typeOf(key)
  if t ~= 'none' and t ~= wants[kind] then return wrong(kind, key) end
  if t == 'none' and (kind == 'xadd' or kind == 'hset' or kind == 'deadletter') then t = wants[kind] end
  types[key] = t
  if kind == 'rotate' then
    local tt = typeOf(ARGV[at + 2])
    if tt ~= 'none' and tt ~= 'hash' then return wrong('rotate', ARGV[at + 2]) end
  elseif kind == 'deadletter' then
    local st = typeOf(ARGV[at + 2])
    if st ~= 'none' and st ~= 'stream' then return wrong('deadletter', ARGV[at + 2]) end
  elseif kind == 'absent' and t == 'hash' then
    local present = {}
    for j = 1, argc do
      if redis.call('HEXISTS', key, ARGV[at + 1 + j]) == 1 then present[#present + 1] = ARGV[at + 1 + j] end
    end
    if #present > 0 then return redis.error_reply('CONFLICT ' .. key .. ' already holds ' .. table.concat(present, ', ')) end
  elseif kind == 'expect' then
    local field, want = ARGV[at + 2], ARGV[at + 3]
    local held = false
    if t == 'hash' then held = redis.call('HGET', key, field) end
    local ok = (want == '' and held == false) or (string.sub(want, 1, 1) == '=' and held == string.sub(want, 2))
    if not ok then
      local said = 'nothing'
      if held then said = held end
      return redis.error_reply('CONFLICT ' .. key .. ' field ' .. field .. ' holds ' .. said)
    end
  end
  ops[k] = { kind, at + 2, argc }
  at = at + 2 + argc
end
-- Lua unpacks at most ~8000 values in one call: a long HSET, XACK or XDEL goes in slices.
local SLICE = 1000
local function sliced(command, key, from, argc, prefix)
  local j = 0
  while j < argc do
    local n = math.min(SLICE, argc - j)
    if prefix then
      redis.call(command, key, prefix, unpack(ARGV, from + j, from + j + n - 1))
    else
      redis.call(command, key, unpack(ARGV, from + j, from + j + n - 1))
    end
    j = j + n
  end
end
local ids = {}
for k = 1, #KEYS do
  local kind, from, argc = ops[k][1], ops[k][2], ops[k][3]
  if kind == 'xadd' then
    ids[#ids + 1] = redis.call('XADD', KEYS[k], unpack(ARGV, from, from + argc - 1))
  elseif kind == 'hset' then
    sliced('HSET', KEYS[k], from, argc)
  elseif kind == 'rotate' then
    -- the target shares the key's hash tag (one slot); RENAME replaces what it held
    if redis.call('HLEN', KEYS[k]) >= tonumber(ARGV[from + 1]) then redis.call('RENAME', KEYS[k], ARGV[from]) end
  elseif kind == 'xack' then
    sliced('XACK', KEYS[k], from + 1, argc - 1, ARGV[from])
  elseif kind == 'xdel' then
    sliced('XDEL', KEYS[k], from, argc)
  elseif kind == 'deadletter' then
    -- ARGV: maxlen ('' for none), source stream, group, id, code, error, deliveries, failed_at
    local maxlen, src, group, id = ARGV[from], ARGV[from + 1], ARGV[from + 2], ARGV[from + 3]
    local fields = letter(src, id, { { 'stream', src }, { 'id', id }, { 'code', ARGV[from + 4] }, { 'error', ARGV[from + 5] }, { 'deliveries', ARGV[from + 6] }, { 'failed_at', ARGV[from + 7] } })
    if maxlen == '' then
      ids[#ids + 1] = redis.call('XADD', KEYS[k], '*', unpack(fields))
    else
      ids[#ids + 1] = redis.call('XADD', KEYS[k], 'MAXLEN', '~', maxlen, '*', unpack(fields))
    end
    if redis.call('EXISTS', src) == 1 then redis.call('XACK', src, group, id) end
  end
end
return ids
`,
);

/** Shared by the two group reads: an entry whose fields pass `maxBytes` (a number, -1 = no limit) becomes a stub. */
const ENTRY_HELPERS = `
local function shaped(id, fields, deliveries, maxBytes)
  local size = 0
  for i = 1, #fields do size = size + #fields[i] end
  if maxBytes >= 0 and size > maxBytes then
    local t = ''
    for i = 1, #fields, 2 do
      if fields[i] == 'type' and #fields[i + 1] <= 64 then t = fields[i + 1] end
    end
    return { id, deliveries, size, { 'type', t } }
  end
  return { id, deliveries, -1, fields }
end
`;

/**
 * A non-blocking XREADGROUP that never ships an oversize entry, nor more than about `budget`
 * bytes at once: new entries (`>`) or, from an id, this consumer's own pending ones (with their
 * delivery counts; those whose data was trimmed away are acked, since nothing is left to process).
 * KEYS[1] stream; ARGV group, consumer, count, id, maxBytes (-1 = no limit), budget (-1 = none).
 * Returns { last id read or '', { { id, deliveries, size (-1 = whole), fields } ... } }.
 *
 * Fenced (KEYS[2] the lease hash, in the stream's slot; ARGV[7] the `owner` it must hold): a
 * reader whose lease is gone gets { '!fenced', the owner now } and no entry is delivered to it,
 * so a deposed owner (paused past its lease) never strands entries in its pending list. An empty
 * read also says the stream's newest id, after which the reader waits with a plain XREAD.
 *
 * Why a budget: entries just under the size limit are each acceptable, but 256 of them in one
 * read are a quarter of a gigabyte in the reader. New entries are measured first (XRANGE, which
 * delivers nothing) and only as many are read as fit, the one that crosses the budget included;
 * pending ones are read one at a time until the budget is spent.
 */
export const READ_GROUP = script(
  "read-group",
  `${ENTRY_HELPERS}
local group, consumer, count, from = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local maxBytes, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
-- A fenced reader (KEYS[2], the lease hash; ARGV[7], the owner it must name) is handed nothing once deposed.
if KEYS[2] then
  local owner = redis.call('HGET', KEYS[2], 'owner')
  if owner ~= ARGV[7] then return { '!fenced', owner or '' } end
end
local function sizeOf(fields)
  if not fields then return 0 end
  local size = 0
  for i = 1, #fields do size = size + #fields[i] end
  -- an oversize entry travels as a stub
  if maxBytes >= 0 and size > maxBytes then return 0 end
  return size
end
local entries = {}
if from == '>' then
  if budget >= 0 then
    local last = nil
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
      local info = {}
      for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
      if info['name'] == group then last = info['last-delivered-id'] end
    end
    if last then
      local ahead = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', count)
      local total, fit = 0, 0
      for _, e in ipairs(ahead) do
        fit = fit + 1
        total = total + sizeOf(e[2])
        if total > budget then break end
      end
      count = math.max(fit, 1)
    end
  end
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', KEYS[1], '>')
  if reply then entries = reply[1][2] end
else
  local cursor, total = from, 0
  while #entries < count and (budget < 0 or total <= budget) do
    local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', (budget < 0) and count or 1, 'STREAMS', KEYS[1], cursor)
    if not reply or #reply[1][2] == 0 then break end
    for _, e in ipairs(reply[1][2]) do
      entries[#entries + 1] = e
      total = total + sizeOf(e[2])
      cursor = e[1]
    end
    if budget < 0 then break end
  end
end
if #entries == 0 then
  -- Where a fenced reader waits from (XREAD, which hands out nothing): the newest entry, read in the same step.
  local newest = KEYS[2] and redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  return { '', {}, newest and newest[1] or '0-0' }
end
local counts = nil
if from ~= '>' then
  counts = {}
  local rows = redis.call('XPENDING', KEYS[1], group, entries[1][1], entries[#entries][1], #entries, consumer)
  for _, r in ipairs(rows) do counts[r[1]] = r[4] end
end
local out, gone = {}, {}
for _, e in ipairs(entries) do
  local id, fields = e[1], e[2]
  if not fields then
    gone[#gone + 1] = id
  else
    local deliveries = 1
    if counts then deliveries = counts[id] or 1 end
    out[#out + 1] = shaped(id, fields, deliveries, maxBytes)
  end
end
if #gone > 0 then redis.call('XACK', KEYS[1], group, unpack(gone)) end
return { entries[#entries][1], out }
`,
);

/**
 * Claims entries pending longer than minIdle (XPENDING IDLE, then XCLAIM, which checks the idle
 * time again), each one delivery more. KEYS[1] stream; ARGV group, consumer, minIdle, count,
 * maxBytes. Returns { { id, deliveries, size, fields } ... }; entries deleted meanwhile are gone
 * from the pending list (XCLAIM drops them).
 */
export const CLAIM = script(
  "claim",
  `${ENTRY_HELPERS}
local group, consumer, minIdle, count, maxBytes = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local rows = redis.call('XPENDING', KEYS[1], group, 'IDLE', minIdle, '-', '+', count)
if #rows == 0 then return {} end
local ids, counts = {}, {}
for i, r in ipairs(rows) do
  ids[i] = r[1]
  counts[r[1]] = r[4]
end
local claimed = redis.call('XCLAIM', KEYS[1], group, consumer, minIdle, unpack(ids))
local out = {}
for _, e in ipairs(claimed) do
  if e[2] then out[#out + 1] = shaped(e[1], e[2], (counts[e[1]] or 0) + 1, maxBytes) end
end
return out
`,
);

/**
 * Bus.takeOver: every entry pending in the group becomes the given consumer's, without counting
 * a delivery (JUSTID). KEYS[1] stream; ARGV group, consumer. Returns how many it took.
 */
export const TAKE_OVER = script(
  "take-over",
  `
local group, consumer = ARGV[1], ARGV[2]
local taken = 0
local from = '-'
while true do
  local rows = redis.call('XPENDING', KEYS[1], group, from, '+', 1000)
  if #rows == 0 then break end
  local ids = {}
  for _, r in ipairs(rows) do
    if r[2] ~= consumer then ids[#ids + 1] = r[1] end
  end
  if #ids > 0 then
    -- JUSTID last (unpack must be the last argument to expand): the delivery counts stay as they were.
    ids[#ids + 1] = 'JUSTID'
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, unpack(ids))
    taken = taken + #ids - 1
  end
  if #rows < 1000 then break end
  from = '(' .. rows[#rows][1]
end
return taken
`,
);

/**
 * Bus.scanFor: looks at up to `count` entries after an id and returns only those of one type
 * (the rest never leave Redis). KEYS[1] stream; ARGV afterId, type, count, maxBytes. Returns
 * { last id looked at or '', { { id, 0, size, fields } ... } }.
 */
export const SCAN_FOR = script(
  "scan-for",
  `${ENTRY_HELPERS}
local afterId, wanted, count, maxBytes = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local entries = redis.call('XRANGE', KEYS[1], '(' .. afterId, '+', 'COUNT', count)
local found = {}
for _, e in ipairs(entries) do
  local fields = e[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'type' then
      if fields[i + 1] == wanted then found[#found + 1] = shaped(e[1], fields, 0, maxBytes) end
      break
    end
  end
end
if #entries == 0 then return { '', found } end
return { entries[#entries][1], found }
`,
);

/**
 * Bus.trimDelivered: the smallest id some group still needs (its oldest pending entry, else the
 * id after its last delivered one) becomes XTRIM MINID, exact, in one script so that no delivery
 * or ack slips in between. Ids are compared as (milliseconds, sequence), both within a Lua double.
 */
export const TRIM_DELIVERED = script(
  "trim-delivered",
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
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
`,
);

/**
 * Bus.lease. KEYS[1] the lease hash, KEYS[2] the token counter; ARGV op, holder, ttl ms, token (renew, resume).
 * Returns { held (0|1), holder or '', token, ttl ms }. A new holding takes the next token and
 * writes `owner` = holder#token, which commits expect (fencing).
 */
export const LEASE = script(
  "lease",
  `
local op, holder, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local current = redis.call('HGET', KEYS[1], 'holder')
if op == 'release' then
  if current == holder then redis.call('DEL', KEYS[1]) end
  return {0, '', '0', 0}
end
if current == holder and (op == 'acquire' or redis.call('HGET', KEYS[1], 'token') == ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, holder, redis.call('HGET', KEYS[1], 'token'), ttl}
end
if op ~= 'acquire' and not current then
  -- A lapsed holding is taken up again only by resume, and only if no one has held the lease since.
  if op == 'resume' and redis.call('GET', KEYS[2]) == ARGV[4] then
    redis.call('HSET', KEYS[1], 'holder', holder, 'token', ARGV[4], 'owner', holder .. '#' .. ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ttl)
    return {1, holder, ARGV[4], ttl}
  end
  return {0, '', '0', 0}
end
if current then
  return {0, current, redis.call('HGET', KEYS[1], 'token'), math.max(redis.call('PTTL', KEYS[1]), 0)}
end
local token = tostring(redis.call('INCR', KEYS[2]))
redis.call('HSET', KEYS[1], 'holder', holder, 'token', token, 'owner', holder .. '#' .. token)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, holder, token, ttl}
`,
);

/** The cause of a call refused because Redis lacked the script (now loaded): nothing ran. */
export const SCRIPT_RELOADED = "esper.script-reloaded";

/**
 * Runs `s` by EVALSHA with Buffer replies. On NOSCRIPT the script is loaded and the call fails
 * as `unavailable` (cause SCRIPT_RELOADED) instead of running it behind the caller's back.
 */
export const runScript = async (redis: Redis, s: Script, keys: readonly string[], args: ReadonlyArray<Buffer | string>): Promise<unknown> => {
  const argv: Array<Buffer | string | number> = [s.sha, keys.length];
  for (const key of keys) argv.push(key);
  for (const arg of args) argv.push(arg);
  try {
    return await redis.callBuffer("EVALSHA", argv);
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    if (message.startsWith("NOSCRIPT")) {
      await redis.script("LOAD", s.source);
      throw new BusError({
        reason: "unavailable",
        message: `the ${s.name} script was not loaded on Redis (restarted or flushed); it is loaded now, try again`,
        cause: SCRIPT_RELOADED,
      });
    }
    throw error;
  }
};
