/**
 * Step 3 of the bridge: the admitted entries applied to the layer, in order. No I/O: the layer
 * and its seeds are actors in this process, and what they answer is gathered synchronously.
 * A command answered earlier in the same batch is answered again as a duplicate, as a stored
 * answer is. A host that throws (a bug: it answers bad commands, it does not throw) sets that
 * entry aside as a dead letter, and the rest of the batch goes on.
 */
import { newMessageId } from "../protocol/message-id.ts";
import type { CommandResult, StateTransitionEvent } from "../protocol/messages.ts";
import { resultFor, seedIdOf } from "../runtime/answer.ts";
import type { LayerHost, LayerRecord } from "../runtime/layer-host.ts";
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
  const settled: Settled[] = [];
  const changed = new Set<number>();
  const answeredHere = new Map<string, CommandResult>();
  const recordBefore = host.record;
  const situation = { source: host.source, layerId: host.layerId, now: context.now, elapsedMs: 0 };
  for (const a of admissions) {
    switch (a.kind) {
      case "dead":
        settled.push(a.answer === undefined ? { kind: "dead", read: a.read, code: a.code, error: a.error } : { kind: "dead", read: a.read, code: a.code, error: a.error, answer: a.answer });
        break;
      case "skip":
        settled.push({ kind: "ack", read: a.read });
        break;
      case "answered":
        settled.push({ kind: "answer", read: a.read, result: againAnswer(a.before, context.now), transitions: [], first: false, applied: false });
        break;
      case "refuse":
      case "apply": {
        const earlier = answeredHere.get(a.command.message_id);
        if (earlier !== undefined) {
          settled.push({ kind: "answer", read: a.read, result: againAnswer(earlier, context.now), transitions: [], first: false, applied: false });
          break;
        }
        if (a.kind === "refuse") {
          const result = resultFor(a.command, situation, seedIdOf(a.command), a.code, a.error, a.details);
          answeredHere.set(a.command.message_id, result);
          settled.push({ kind: "answer", read: a.read, result, transitions: [], first: true, applied: false });
          break;
        }
        try {
          const applied = host.apply(a.command, context.now);
          for (const seedId of applied.changed) changed.add(seedId);
          answeredHere.set(a.command.message_id, applied.result);
          settled.push({ kind: "answer", read: a.read, result: applied.result, transitions: applied.transitions, first: true, applied: true });
        } catch (error) {
          // Whatever it changed before it threw is persisted all the same: the store must hold what the actors hold.
          for (const seedId of host.takeChanged()) changed.add(seedId);
          settled.push({ kind: "dead", read: a.read, code: "internal", error: `the layer could not process this entry: ${error instanceof Error ? error.message : String(error)}` });
        }
        break;
      }
    }
  }
  const recordAfter = host.record;
  const recordChanged = recordAfter.epoch !== recordBefore.epoch || recordAfter.stopReason !== recordBefore.stopReason;
  return { settled, changed, record: recordChanged ? recordAfter : undefined };
};
