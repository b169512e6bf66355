import { BusError, type CommitOp } from "./bus.ts";
import { isStreamId } from "./stream-id.ts";

/**
 * Checks what a commit can get wrong before touching any key (malformed ids, a bad MAXLEN), so
 * both buses refuse it whole, with the same error, instead of failing halfway through.
 */
export const commitShapeError = (ops: readonly CommitOp[]): BusError | undefined => {
  const badId = (id: string) => new BusError({ reason: "command_failed", message: `ERR Invalid stream ID specified as stream command argument: ${id}` });
  const badMaxLen = (maxLen: number) => new BusError({ reason: "command_failed", message: `ERR MAXLEN must be a non-negative integer: ${maxLen}` });
  for (const op of ops) {
    if (op.op === "ack" || op.op === "xdel") {
      for (const id of op.ids) if (!isStreamId(id)) return badId(id);
    }
    if (op.op === "deadletter" && !isStreamId(op.id)) return badId(op.id);
    if (op.op === "rotate" && !(Number.isInteger(op.atFields) && op.atFields >= 1)) {
      return new BusError({ reason: "command_failed", message: `ERR rotate needs a positive integer field count: ${op.atFields}` });
    }
    if ((op.op === "xadd" || op.op === "deadletter") && op.maxLen !== undefined && op.maxLen !== null && !(Number.isInteger(op.maxLen) && op.maxLen >= 0)) {
      return badMaxLen(op.maxLen);
    }
  }
  return undefined;
};

/** Ops that would change nothing (an ack of no ids, an hset of no values) are dropped, as Redis rejects them as malformed. */
export const effectiveOps = (ops: readonly CommitOp[]): readonly CommitOp[] =>
  ops.filter((op) =>
    op.op === "hset"
      ? op.values instanceof Map
        ? op.values.size > 0
        : Object.keys(op.values).length > 0
      : op.op === "ack" || op.op === "xdel"
        ? op.ids.length > 0
        : op.op === "absent"
          ? op.fields.length > 0
          : true,
  );

/** The error of a commit whose precondition (`absent`, `expect`) on `key` did not hold. */
export const conflictError = (key: string, detail: string): BusError =>
  new BusError({ reason: "conflict", message: `commit not applied: ${key} ${detail}`, key });
