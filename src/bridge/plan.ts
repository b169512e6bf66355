/**
 * Step 4 of the bridge: a settled batch as ONE atomic commit (Bus.commit). Pure. In order:
 *
 * 1. preconditions: the layer's generation marker still holds (else Redis lost the layer's data
 *    and nothing may be written over it), so does the token of this bridge's last commit (else
 *    Redis lost its latest writes), and none of the batch's first-time message ids has an
 *    answer stored (else another delivery answered it meanwhile: the batch is settled again);
 * 2. per entry, in the order settled: dead letters (copied where they lie, with their answer when
 *    attributable), events then the result on the layer's event stream, each followed by its
 *    copies for reference readers (the reference topology: `copies`);
 * 3. the changed seeds' snapshots, the first-time answers (the dedupe table, rotated when full),
 *    the layer's record when it changed, the commit's token (see bridge.ts `landed`);
 * 4. the acks (an entry found ahead of its group is deleted instead: it was never delivered).
 */
import { LEASE_OWNER_FIELD, type CommitOp, type EntryFields, type HashValue } from "../bus/bus.ts";
import type { PersistedSeed } from "../../machines/seed.ts";
import { isMessageType, type CommandResult, type Message } from "../protocol/messages.ts";
import type { LayerRecord } from "../runtime/layer-host.ts";
import type { Settlement } from "./settle.ts";
import { deferredValue, GENERATION_FIELD, RECORD_FIELD, recordValue, type LayerKeys } from "./store.ts";

export interface PlanContext {
  readonly keys: LayerKeys;
  /** The group each stream is read in. */
  readonly groupOf: (stream: string) => string;
  /** How a message becomes an entry of the event stream. */
  readonly encode: (message: Message) => EntryFields;
  /**
   * The further entries a message written to the event stream is copied to (the reference
   * topology's acknowledgements and per-type event streams), given the type of the command a
   * result answers; absent: none.
   */
  readonly copies?: (message: Message, commandType: string | undefined) => readonly { readonly stream: string; readonly fields: EntryFields }[];
  readonly maxLen: number;
  readonly dedupeWindow: number;
  /** The generation this bridge restored; the commit is refused if the store's is not it. */
  readonly generation: string;
  /** The current snapshot of each changed seed. */
  readonly snapshots: ReadonlyMap<number, PersistedSeed>;
  /** Where the commit's token is, the token of the commit before it (null: none yet), and this commit's. */
  readonly marker: CommitMarker;
  /** Time (ms) the dead letters are stamped with. */
  readonly now: number;
}

export interface CommitMarker {
  readonly field: string;
  readonly previous: string | null;
  readonly token: string;
  /** The lease holding the bridge commits under (`holder#token`, see Bus.lease); absent: it runs without one. */
  readonly fence?: string;
}

/**
 * The preconditions every commit of the layer starts with: the store is still the one restored
 * (its generation marker), it holds this bridge's last commit (else Redis lost recent writes),
 * and, under a lease, the bridge still holds it (else another owner took the layer over: fencing).
 */
export const sameStore = (keys: LayerKeys, generation: string, marker: CommitMarker): CommitOp[] => {
  const ops: CommitOp[] = [
    { op: "expect", key: keys.meta, field: GENERATION_FIELD, value: generation },
    { op: "expect", key: keys.meta, field: marker.field, value: marker.previous },
  ];
  if (marker.fence !== undefined) ops.push({ op: "expect", key: keys.lease, field: LEASE_OWNER_FIELD, value: marker.fence });
  return ops;
};

export const planCommit = (settlement: Settlement, context: PlanContext): CommitOp[] => {
  const { keys } = context;
  const ops: CommitOp[] = sameStore(keys, context.generation, context.marker);
  const firstIds: string[] = [];
  const answers = new Map<string, HashValue>();
  for (const s of settlement.settled) if (s.kind === "answer" && s.first) firstIds.push(s.result.correlation_id);
  if (firstIds.length > 0) {
    ops.push({ op: "absent", key: keys.results, fields: firstIds }, { op: "absent", key: keys.resultsOld, fields: firstIds });
  }

  const acks = new Map<string, string[]>();
  const deletes = new Map<string, string[]>();
  const done = (stream: string, id: string, ahead: boolean) => {
    const into = ahead ? deletes : acks;
    const list = into.get(stream);
    if (list === undefined) into.set(stream, [id]);
    else list.push(id);
  };
  const publish = (message: Message, commandType?: string) => {
    ops.push({ op: "xadd", stream: keys.events, fields: context.encode(message), maxLen: context.maxLen });
    if (context.copies !== undefined) for (const copy of context.copies(message, commandType)) ops.push({ op: "xadd", stream: copy.stream, fields: copy.fields, maxLen: context.maxLen });
  };
  /** The type of the command an answer answers, when its entry names a message type esper knows. */
  const typeOf = (fields: EntryFields): string | undefined => (isMessageType(fields.type) ? fields.type : undefined);

  for (const s of settlement.settled) {
    const { stream, entry } = s.read;
    if (s.kind === "dead") {
      ops.push({
        op: "deadletter",
        dlq: s.read.stream === keys.all ? keys.dlqAll : keys.dlq,
        stream,
        group: context.groupOf(stream),
        id: entry.id,
        code: s.code,
        error: s.error,
        deliveries: entry.deliveries,
        failedAt: context.now,
        maxLen: context.maxLen,
      });
      if (s.answer !== undefined) publish(s.answer, typeOf(entry.fields));
      // The letter acks it; one found ahead was never delivered, so it is removed as well.
      if (s.read.ahead === true) done(stream, entry.id, true);
      continue;
    }
    if (s.kind === "answer") {
      for (const t of s.transitions) publish(t);
      if (s.blueprints) for (const b of s.blueprints) publish(b);
      publish(s.result, typeOf(entry.fields));
      if (s.first) answers.set(s.result.correlation_id, deferredValue(s.result as CommandResult));
    }
    done(stream, entry.id, s.read.ahead === true);
  }

  if (context.snapshots.size > 0) {
    const state = new Map<string, HashValue>();
    for (const [seedId, snapshot] of context.snapshots) state.set(String(seedId), deferredValue(snapshot));
    ops.push({ op: "hset", key: keys.state, values: state });
  }
  if (answers.size > 0) {
    ops.push({ op: "rotate", key: keys.results, to: keys.resultsOld, atFields: context.dedupeWindow }, { op: "hset", key: keys.results, values: answers });
  }
  const meta: Record<string, HashValue> = { [context.marker.field]: context.marker.token };
  if (settlement.record !== undefined) meta[RECORD_FIELD] = recordValue(settlement.record as LayerRecord);
  ops.push({ op: "hset", key: keys.meta, values: meta });
  for (const [stream, ids] of acks) ops.push({ op: "ack", stream, group: context.groupOf(stream), ids });
  for (const [stream, ids] of deletes) ops.push({ op: "xdel", stream, ids });
  return ops;
};
