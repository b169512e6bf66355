import type { Redis } from "ioredis";
import { BusError, type CommitOp } from "./bus.ts";
import { fieldArgs, xaddArgs } from "./redis-replies.ts";
import { COMMIT, runScript } from "./redis-scripts.ts";

/**
 * A commit on Redis: the ops as the COMMIT script's KEYS and ARGV (redis-scripts.ts says how
 * they are laid out and why a commit is a script).
 */
const encode = (ops: readonly CommitOp[], defaultMaxLen: number): { keys: string[]; argv: (Buffer | string)[] } => {
  const keys: string[] = [];
  const argv: (Buffer | string)[] = [];
  const push = (key: string, kind: string, args: readonly (Buffer | string)[]) => {
    keys.push(key);
    argv.push(kind, String(args.length));
    for (const arg of args) argv.push(arg);
  };
  for (const op of ops) {
    switch (op.op) {
      case "xadd":
        push(op.stream, "xadd", xaddArgs(op.fields, op.maxLen === undefined ? defaultMaxLen : op.maxLen));
        break;
      case "hset":
        push(op.key, "hset", fieldArgs(op.values));
        break;
      case "ack":
        push(op.stream, "xack", [op.group, ...op.ids]);
        break;
      case "xdel":
        push(op.stream, "xdel", op.ids);
        break;
      case "absent":
        push(op.key, "absent", op.fields);
        break;
      case "expect":
        push(op.key, "expect", [op.field, op.value === null ? "" : `=${op.value}`]);
        break;
      case "rotate":
        push(op.key, "rotate", [op.to, String(op.atFields)]);
        break;
      case "deadletter": {
        const maxLen = op.maxLen === undefined ? defaultMaxLen : op.maxLen;
        push(op.dlq, "deadletter", [maxLen === null ? "" : String(maxLen), op.stream, op.group, op.id, op.code, op.error, String(op.deliveries), String(op.failedAt)]);
        break;
      }
    }
  }
  return { keys, argv };
};

/**
 * Runs a commit. A precondition that did not hold comes back as a `conflict` naming its key;
 * an op list that cannot be encoded fails as `command_failed` (it would fail again).
 */
export const runCommit = async (redis: Redis, ops: readonly CommitOp[], defaultMaxLen: number): Promise<string[]> => {
  if (ops.length === 0) return [];
  let encoded: ReturnType<typeof encode>;
  try {
    encoded = encode(ops, defaultMaxLen);
  } catch (error) {
    throw new BusError({ reason: "command_failed", message: `commit could not be encoded: ${error instanceof Error ? error.message : String(error)}`, cause: error });
  }
  try {
    const ids = (await runScript(redis, COMMIT, encoded.keys, encoded.argv)) as Buffer[];
    return ids.map((id) => id.toString("latin1"));
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    if (message.startsWith("CONFLICT ")) {
      const rest = message.slice("CONFLICT ".length);
      const key = rest.slice(0, rest.indexOf(" "));
      throw new BusError({ reason: "conflict", message: `commit not applied: ${rest}`, key });
    }
    throw error;
  }
};
