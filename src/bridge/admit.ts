/**
 * Step 2 of the bridge: what each decoded entry comes to before the layer sees it. Pure (the
 * source rates are a counter the step advances). In order of precedence:
 *
 * - dead: it can never be processed (undecodable, too large, bad signature, not a command, or
 *   delivered more than `maxDeliveries` times). It goes to the dead-letter stream, and when it can
 *   be attributed to a command it is also answered with a failed CommandResult.
 * - skip: another layer's entry on P.control.all (that layer answers it).
 * - answered: its message_id was answered before: the answer is given again, flagged duplicate.
 * - refuse: answered without reaching the layer: for another layer (unknown_layer), past its
 *   timeout_ms (timeout), or its source is over its rate (rate_limited).
 * - apply: the layer decides.
 *
 * Emergency stops are taken first (stably): they overtake everything read with them.
 */
import type { CommandResult } from "../protocol/messages.ts";
import { COMMAND_TYPES, commandLayer, type Command, type Message } from "../protocol/messages.ts";
import { rejectionResult } from "../protocol/make.ts";
import { resultFor, seedIdOf } from "../runtime/answer.ts";
import type { Decoded, Read } from "./decode.ts";
import type { SourceRates } from "./source-rates.ts";

export type Admission =
  | { readonly kind: "dead"; readonly read: Read; readonly code: string; readonly error: string; readonly answer?: CommandResult }
  | { readonly kind: "skip"; readonly read: Read }
  | { readonly kind: "answered"; readonly read: Read; readonly command: Command; readonly before: CommandResult }
  | {
      readonly kind: "refuse";
      readonly read: Read;
      readonly command: Command;
      readonly code: CommandResult["code"];
      readonly error: string;
      readonly details: Readonly<Record<string, unknown>>;
    }
  | { readonly kind: "apply"; readonly read: Read; readonly command: Command };

export interface AdmitContext {
  readonly layerId: string;
  /** The key of P.control.all: entries there may be another layer's. */
  readonly allStream: string;
  /** The time (ms) commands are judged at (timeouts, rates). */
  readonly now: number;
  readonly maxDeliveries: number;
  /** Answers already stored for the batch's message ids (read when the batch holds a redelivery), or null. */
  readonly known: ReadonlyMap<string, CommandResult> | null;
  readonly rates: SourceRates;
  readonly ratePerSource: number;
  /** `source` of the answers the layer gives. */
  readonly source: string;
}

const isCommand = (m: Message): m is Command => COMMAND_TYPES.has(m.message_type);

/** The layer's own copy of a command: a stop for every layer names this one. */
const forLayer = (command: Command, layerId: string): Command =>
  command.message_type === "EmergencyStopCommand" && command.layer_id === null ? { ...command, layer_id: layerId } : command;

/**
 * A command whose sender has stopped waiting (timeout_ms since it was sent) is answered, not
 * applied. Not an emergency stop: stopping is never too late, and a layer whose worker was down
 * when a stop was sent must still apply it when it comes back (docs/protocol.md, P.control.all).
 */
const overdue = (command: Command, now: number): { readonly error: string; readonly waited: number } | null => {
  if (command.message_type === "EmergencyStopCommand") return null;
  const timeoutMs = command.timeout_ms;
  if (!timeoutMs) return null;
  const waited = Math.round(now - command.timestamp * 1000);
  return waited > timeoutMs ? { error: `waited ${waited} ms since it was sent, longer than its timeout_ms ${timeoutMs}; not applied`, waited } : null;
};

/** Positions (in `decoded`) of commands whose source is past its rate: each source's commands are taken at once. */
const overRate = (decoded: readonly Decoded[], context: AdmitContext): ReadonlySet<number> => {
  const over = new Set<number>();
  if (context.ratePerSource <= 0) return over;
  const bySource = new Map<string, number[]>();
  decoded.forEach((d, i) => {
    if (!d.ok || !isCommand(d.message)) return;
    const list = bySource.get(d.message.source);
    if (list === undefined) bySource.set(d.message.source, [i]);
    else list.push(i);
  });
  for (const [source, positions] of bySource) {
    const granted = context.rates.take(source, positions.length, context.now);
    for (const i of positions.slice(granted)) over.add(i);
  }
  return over;
};

/**
 * The answer to a command dead-lettered after too many deliveries, when it is this layer's and
 * not answered already: its sender waits for one, and hears why instead of timing out.
 */
const unsettledAnswer = (d: Decoded, error: string, context: AdmitContext): CommandResult | undefined => {
  if (!d.ok || !isCommand(d.message)) return undefined;
  const target = commandLayer(d.message);
  if (target !== null && target !== context.layerId) return undefined;
  if (context.known?.has(d.message.message_id) === true) return undefined;
  const command = forLayer(d.message, context.layerId);
  const situation = { source: context.source, layerId: context.layerId, now: context.now, elapsedMs: 0 };
  return resultFor(command, situation, seedIdOf(command), "internal", `${error}; it was not applied and is in the dead-letter stream`, { deliveries: d.read.entry.deliveries });
};

const admitOne = (d: Decoded, i: number, over: ReadonlySet<number>, context: AdmitContext): Admission => {
  const { read } = d;
  if (read.entry.deliveries > context.maxDeliveries) {
    const error = `exceeded max deliveries (${context.maxDeliveries}): it was delivered ${read.entry.deliveries} times without being settled`;
    const answer = unsettledAnswer(d, error, context);
    return { kind: "dead", read, code: "internal", error, ...(answer === undefined ? {} : { answer }) };
  }
  if (!d.ok) {
    const answer = rejectionResult(d.error, context.layerId, context.source, context.now / 1000);
    // Another layer's bad command on P.control.all is that layer's to answer and letter.
    const layer = d.error.partial?.layer_id;
    if (read.stream === context.allStream && layer !== undefined && layer !== context.layerId) return { kind: "skip", read };
    return { kind: "dead", read, code: d.error.code, error: d.error.message, ...(answer === undefined ? {} : { answer }) };
  }
  const m = d.message;
  if (!isCommand(m)) return { kind: "dead", read, code: "invalid_message", error: `${m.message_type} is not a command; control streams carry commands only` };
  const target = commandLayer(m);
  if (read.stream === context.allStream && target !== null && target !== context.layerId) return { kind: "skip", read };
  const command = forLayer(m, context.layerId);
  const before = context.known?.get(command.message_id);
  if (before !== undefined) return { kind: "answered", read, command, before };
  if (target !== null && target !== context.layerId) {
    return {
      kind: "refuse",
      read,
      command,
      code: "unknown_layer",
      error: `command for layer ${target} arrived on ${read.stream}, the stream of layer ${context.layerId}; send it to its own layer's stream`,
      details: {},
    };
  }
  const late = overdue(command, context.now);
  if (late !== null) return { kind: "refuse", read, command, code: "timeout", error: late.error, details: { waited_ms: late.waited } };
  if (over.has(i)) {
    return {
      kind: "refuse",
      read,
      command,
      code: "rate_limited",
      error: `source ${command.source} sent more than ${context.ratePerSource} commands in one second; slow down and retry`,
      details: {},
    };
  }
  return { kind: "apply", read, command };
};

const urgency = (a: Admission): number => ((a.kind === "apply" || a.kind === "refuse") && a.command.message_type === "EmergencyStopCommand" ? 0 : 1);

/** Admits a batch, emergency stops first. Takes the batch's rates: call it once per batch read. */
export const admit = (decoded: readonly Decoded[], context: AdmitContext): Admission[] => {
  const over = overRate(decoded, context);
  return decoded.map((d, i) => admitOne(d, i, over, context)).sort((a, b) => urgency(a) - urgency(b));
};

/** Admits a batch again with what is now known to be answered, keeping the rate verdicts of the first admission. */
export const readmit = (first: readonly Admission[], known: ReadonlyMap<string, CommandResult>): Admission[] =>
  first.map((a) => {
    if (a.kind !== "apply" && a.kind !== "refuse") return a;
    const before = known.get(a.command.message_id);
    return before === undefined ? a : { kind: "answered", read: a.read, command: a.command, before };
  });
