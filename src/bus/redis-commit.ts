import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { BusError, type CommitOp } from "./bus.ts";
import { fieldArgs, xaddArgs } from "./redis-replies.ts";

/**
 * An atomic commit on Redis. MULTI/EXEC runs every queued command even when one fails at run
 * time (an XADD to a key holding a hash), leaving the others applied, so a commit is one Lua
 * script instead: it checks the type of every key it will write first, and writes only when all
 * fit. Redis runs a script atomically, and refuses a script's first write, never a later one,
 * under maxmemory, so nothing can fail between the first write and the last.
 *
 * An `absent` op is checked with the types, before the first write, so a conflict writes nothing.
 *
 * KEYS[k] is op k's key; ARGV is, per op, its kind, its argument count, then its arguments.
 * Returns the ids of the XADDs, in order.
 */
const SCRIPT = `
local wants = { xadd = 'stream', hset = 'hash', xack = 'stream', xdel = 'stream', absent = 'hash', rotate = 'hash' }
local types = {}
local ops = {}
local at = 1
for k = 1, #KEYS do
  local kind, argc = ARGV[at], tonumber(ARGV[at + 1])
  local key = KEYS[k]
  local t = types[key]
  if t == nil then t = redis.call('TYPE', key)['ok'] end
  if t ~= 'none' and t ~= wants[kind] then
    return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value (' .. kind .. ' ' .. key .. ')')
  end
  if t == 'none' and (kind == 'xadd' or kind == 'hset') then t = wants[kind] end
  types[key] = t
  if kind == 'rotate' then
    local to = ARGV[at + 2]
    local tt = types[to]
    if tt == nil then tt = redis.call('TYPE', to)['ok'] end
    if tt ~= 'none' and tt ~= 'hash' then
      return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value (rotate ' .. to .. ')')
    end
  end
  if kind == 'absent' and t == 'hash' then
    local present = {}
    for j = 1, argc do
      if redis.call('HEXISTS', key, ARGV[at + 1 + j]) == 1 then present[#present + 1] = ARGV[at + 1 + j] end
    end
    if #present > 0 then return redis.error_reply('CONFLICT ' .. key .. ' already holds ' .. table.concat(present, ', ')) end
  end
  ops[k] = { kind, at + 2, argc }
  at = at + 2 + argc
end
-- Lua unpacks at most ~8000 values in one call: a long HSET, XACK or XDEL goes in slices.
local SLICE = 1000
local function sliced(command, key, from, argc)
  local j = 0
  while j < argc do
    local n = math.min(SLICE, argc - j)
    redis.call(command, key, unpack(ARGV, from + j, from + j + n - 1))
    j = j + n
  end
end
local ids = {}
for k = 1, #KEYS do
  local kind, from, argc = ops[k][1], ops[k][2], ops[k][3]
  local args = {}
  if kind == 'xadd' or kind == 'rotate' then
    for j = 1, argc do args[j] = ARGV[from + j - 1] end
  end
  if kind == 'xadd' then
    ids[#ids + 1] = redis.call('XADD', KEYS[k], unpack(args))
  elseif kind == 'hset' then
    sliced('HSET', KEYS[k], from, argc)
  elseif kind == 'absent' then
    -- checked above, before any write
  elseif kind == 'rotate' then
    -- args[1] shares the key's hash tag (one slot); RENAME replaces what it held
    if redis.call('HLEN', KEYS[k]) >= tonumber(args[2]) then redis.call('RENAME', KEYS[k], args[1]) end
  elseif kind == 'xack' then
    -- the group, then the ids in slices
    local group = ARGV[from]
    local j = 1
    while j < argc do
      local n = math.min(SLICE, argc - j)
      redis.call('XACK', KEYS[k], group, unpack(ARGV, from + j, from + j + n - 1))
      j = j + n
    end
  else
    sliced('XDEL', KEYS[k], from, argc)
  end
end
return ids
`;

const encode = (ops: readonly CommitOp[], defaultMaxLen: number): { keys: string[]; argv: (Buffer | string)[] } => {
  const keys: string[] = [];
  const argv: (Buffer | string)[] = [];
  const push = (key: string, kind: string, args: readonly (Buffer | string)[]) => {
    keys.push(key);
    argv.push(kind, String(args.length), ...args);
  };
  for (const op of ops) {
    switch (op.op) {
      case "xadd":
        push(op.stream, "xadd", xaddArgs(op.fields, op.maxLen ?? defaultMaxLen));
        break;
      case "hset":
        push(op.key, "hset", fieldArgs(op.values));
        break;
      case "ack":
        push(op.stream, "xack", [op.group, ...op.ids]);
        break;
      case "xdel":
        push(op.stream, "xdel", [...op.ids]);
        break;
      case "absent":
        push(op.key, "absent", [...op.fields]);
        break;
      case "rotate":
        push(op.key, "rotate", [op.to, String(op.atFields)]);
        break;
    }
  }
  return { keys, argv };
};

const SCRIPT_SHA = createHash("sha1").update(SCRIPT).digest("hex");

/** The cause of a commit refused because Redis lacked the script (now loaded): nothing ran, so a caller still waiting may commit again at once. */
export const SCRIPT_RELOADED = "esper.commit-script-reloaded";

/**
 * Runs the commit script with EVALSHA: its kilobyte of text is not sent (and encoded into the
 * command) with every commit. When Redis does not have it (a restart, SCRIPT FLUSH), the attempt
 * loads it and fails as `unavailable` instead of sending EVAL behind the caller's back: a caller
 * that gave up on this attempt may already have checked that it did not land and committed again,
 * and a fallback EVAL arriving after that would apply the commit twice. NOSCRIPT means nothing
 * ran, so a retry by a caller still waiting for this attempt is safe (RedisBus.commit does one).
 */
export const runCommit = async (redis: Redis, ops: readonly CommitOp[], defaultMaxLen: number): Promise<string[]> => {
  if (ops.length === 0) return [];
  let encoded: ReturnType<typeof encode>;
  try {
    encoded = encode(ops, defaultMaxLen);
  } catch (error) {
    // A value that cannot be encoded will not encode on a retry either: not `unavailable`.
    throw new BusError({ reason: "command_failed", message: `commit could not be encoded: ${error instanceof Error ? error.message : String(error)}`, cause: error });
  }
  const { keys, argv } = encoded;
  try {
    return (await redis.evalsha(SCRIPT_SHA, keys.length, ...keys, ...argv)) as string[];
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    if (message.startsWith("CONFLICT ")) throw new BusError({ reason: "conflict", message: `commit not applied: ${message.slice("CONFLICT ".length)}` });
    if (message.startsWith("NOSCRIPT")) {
      await redis.script("LOAD", SCRIPT);
      throw new BusError({ reason: "unavailable", message: "the commit script was not loaded on Redis (restarted or flushed); it is loaded now, commit again", cause: SCRIPT_RELOADED });
    }
    throw error;
  }
};
