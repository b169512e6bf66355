/**
 * Step 3 of the bridge: the admitted entries applied to the layer, in order (LayerHost.applyAll:
 * a run of commands is one step of the layer). No I/O: the layer and its seeds are actors in this
 * process, and what they answer is gathered synchronously. A command answered earlier in the same
 * batch is answered again as a duplicate, as a stored answer is. A host that throws (a bug: it
 * answers bad commands, it does not throw) sets the batch's commands aside as dead letters.
 */
import { newMessageId } from "../protocol/message-id.ts";
import type { BlueprintEvent, CommandResult, StateTransitionEvent } from "../protocol/messages.ts";
import { resultFor, seedIdOf, type Answer } from "../runtime/answer.ts";
import { sameRecord, type LayerHost, type LayerRecord } from "../runtime/layer-host.ts";
import type { Admission } from "./admit.ts";
import type { Read } from "./decode.ts";

export type Settled =
  | { readonly kind: "dead"; readonly read: Read; readonly code: string; readonly error: string; readonly answer?: CommandResult }
  /** Acked and nothing else (another layer's entry on P.control.all). */
  | { readonly kind: "ack"; readonly read: Read }
  | {
      readonly kind: "answer";
      readonly read: Read;
      readonly result: CommandResult;
      readonly transitions: readonly StateTransitionEvent[];
      /** Blueprints its seeds took (published after the transitions). */
      readonly blueprints?: readonly BlueprintEvent[];
      /** The first answer to its message_id: kept in the dedupe table. */
      readonly first: boolean;
      /** It reached the layer (and may have changed it). */
      readonly applied: boolean;
    };

export interface Settlement {
  readonly settled: readonly Settled[];
  /** Seeds whose snapshots changed: persisted with the batch. */
  readonly changed: ReadonlySet<number>;
  /** The layer's record (epoch, stop) when the batch changed it. */
  readonly record: LayerRecord | undefined;
}

export interface SettleContext {
  /** The time (ms) the batch is applied at. */
  readonly now: number;
}

/** The same answer, as a message of its own (message ids are unique on the event stream too), flagged duplicate. */
export const againAnswer = (before: CommandResult, now: number): CommandResult => ({
  ...before,
  message_id: newMessageId(),
  timestamp: now / 1000,
  details: { ...before.details, duplicate: true },
});

export const settle = (admissions: readonly Admission[], host: LayerHost, context: SettleContext): Settlement => {
  const changed = new Set<number>();
  const recordBefore = host.record;
  const situation = { source: host.source, layerId: host.layerId, now: context.now, elapsedMs: 0 };
  // The commands to apply, in order: each message_id's first; a later copy is answered with the first's answer.
  const first = new Map<string, number>();
  const toApply: number[] = [];
  admissions.forEach((a, i) => {
    if (a.kind !== "refuse" && a.kind !== "apply") return;
    if (first.has(a.command.message_id)) return;
    first.set(a.command.message_id, i);
    if (a.kind === "apply") toApply.push(i);
  });
  const answers = new Map<number, Answer>();
  const failed = new Map<number, string>();
  const applied = host.applyAll(
    toApply.map((i) => (admissions[i] as Extract<Admission, { kind: "apply" }>).command),
    context.now,
  );
  toApply.forEach((i, k) => {
    const a = applied.answers[k]!;
    if ("failed" in a) failed.set(i, `the layer could not process this entry: ${a.failed}`);
    else answers.set(i, a);
  });
  // What a command changed before the host failed on it is persisted all the same: the store must hold what the actors hold.
  for (const seedId of applied.changed) changed.add(seedId);

  const results = new Map<number, CommandResult>();
  const settled = admissions.map((a, i): Settled => {
    switch (a.kind) {
      case "dead":
        return a.answer === undefined ? { kind: "dead", read: a.read, code: a.code, error: a.error } : { kind: "dead", read: a.read, code: a.code, error: a.error, answer: a.answer };
      case "skip":
        return { kind: "ack", read: a.read };
      case "answered":
        return { kind: "answer", read: a.read, result: againAnswer(a.before, context.now), transitions: [], first: false, applied: false };
      case "refuse":
      case "apply": {
        const at = first.get(a.command.message_id)!;
        if (at !== i) {
          const earlier = results.get(at);
          // The first copy went to the dead letters (the layer threw): so does this one.
          if (earlier === undefined) return { kind: "dead", read: a.read, code: "internal", error: failed.get(at) ?? "the layer could not process this entry" };
          return { kind: "answer", read: a.read, result: againAnswer(earlier, context.now), transitions: [], first: false, applied: false };
        }
        if (a.kind === "refuse") {
          const result = resultFor(a.command, situation, seedIdOf(a.command), a.code, a.error, a.details);
          results.set(i, result);
          return { kind: "answer", read: a.read, result, transitions: [], first: true, applied: false };
        }
        const answer = answers.get(i);
        if (answer === undefined) return { kind: "dead", read: a.read, code: "internal", error: failed.get(i)! };
        results.set(i, answer.result);
        return { kind: "answer", read: a.read, result: answer.result, transitions: answer.transitions, ...(answer.blueprints ? { blueprints: answer.blueprints } : {}), first: true, applied: true };
      }
    }
  });
  const recordAfter = host.record;
  const recordChanged = !sameRecord(recordAfter, recordBefore);
  return { settled, changed, record: recordChanged ? recordAfter : undefined };
};
