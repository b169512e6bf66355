/**
 * What a command comes to, as a pure function of the command and what the machines answered
 * while the layer handled it: the layer's own refusals (`result` emissions), the seeds'
 * `outcome`s, and any seed that crashed. One CommandResult per command (docs/protocol.md "Command
 * results") and one StateTransitionEvent per seed that moved.
 */
import type { LayerResult } from "../../machines/layer.ts";
import type { BlueprintAnswer, SeedOutcome } from "../../machines/seed.ts";
import { blueprintEvent, commandResult, stateTransitionEvent } from "../protocol/make.ts";
import type { BlueprintEvent, Command, CommandResult, StateTransitionEvent } from "../protocol/messages.ts";
import { blueprintUpdatesOf } from "./orders.ts";

export interface Crash {
  readonly seedId: number;
  readonly error: string;
  /** The state it was restarted in: its last snapshot before the event that made it throw. */
  readonly restoredState: string;
}

/** Everything the layer and its seeds said while handling one command. */
export interface Said {
  readonly refusals: readonly LayerResult[];
  readonly outcomes: readonly SeedOutcome[];
  /** The seeds' answers to blueprint updates. */
  readonly blueprints: readonly BlueprintAnswer[];
  readonly crashes: readonly Crash[];
  /** Whether a whole-layer emergency stop is in force once the command is handled. */
  readonly stopped: boolean;
}

export interface Situation {
  /** `source` of the messages the layer writes. */
  readonly source: string;
  readonly layerId: string;
  /** When the answer is given (ms since the epoch). */
  readonly now: number;
  readonly elapsedMs: number;
}

export interface Answer {
  readonly result: CommandResult;
  readonly transitions: readonly StateTransitionEvent[];
  /**
   * A BlueprintEvent (`updated`) for every seed that took a blueprint: on the event stream in the
   * same commit, so a trainer that follows the layer from another process learns which blueprint
   * each seed runs at the same point of the stream as every other follower.
   */
  readonly blueprints?: readonly BlueprintEvent[];
}

type Failed = Extract<SeedOutcome, { ok: false }>;

/** One command's line in a batch's result (`details.results`). */
interface BatchLine {
  readonly index: number;
  readonly command_id: string;
  readonly seed_id: number | null;
  readonly applied: boolean;
  readonly success: boolean;
  readonly code: string;
  readonly error?: string | null;
  readonly skipped?: true;
}

const triggeredBy = (command: Command): "user" | "system" | "policy" => {
  if (command.message_type === "EmergencyStopCommand") return "system";
  const said = command.metadata?.triggered_by;
  if (said === "user" || said === "system" || said === "policy") return said;
  return command.source.startsWith("tamiyo") ? "policy" : "user";
};

export const seedIdOf = (command: Command): number | null =>
  "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null;

/** A CommandResult for `command` from the layer (`code` ok or not). */
export const resultFor = (
  command: { readonly message_id: string },
  situation: Situation,
  seedId: number | null,
  code: CommandResult["code"],
  error: string | null,
  details: Readonly<Record<string, unknown>>,
): CommandResult =>
  commandResult({
    source: situation.source,
    timestamp: situation.now / 1000,
    correlation_id: command.message_id,
    layer_id: situation.layerId,
    // A seed id no message can carry (a hand-built command's -1) is answered as "no seed".
    seed_id: seedId !== null && Number.isSafeInteger(seedId) && seedId >= 0 ? seedId : null,
    success: code === "ok",
    error: code === "ok" ? null : error,
    code,
    details,
    execution_time_ms: situation.elapsedMs,
  });

/**
 * A whole-layer answer lists each seed's line while the layer is small; beyond this many seeds it
 * lists only the seeds that refused (at most this many) and says how many lines it left out, so
 * the answer to a 100,000-seed command stays a message every reader takes.
 */
export const MAX_SEED_LINES = 1_000;

const listed = <T>(lines: readonly T[], keep: (line: T) => boolean): { readonly lines: readonly T[]; readonly omitted: number } => {
  if (lines.length <= MAX_SEED_LINES) return { lines, omitted: 0 };
  const kept = lines.filter(keep).slice(0, MAX_SEED_LINES);
  return { lines: kept, omitted: lines.length - kept.length };
};

const lifecycleResult = (command: Command, seedId: number | null, outcomes: readonly SeedOutcome[], situation: Situation): CommandResult => {
  if (seedId !== null) {
    const o = outcomes[0];
    if (!o) return resultFor(command, situation, seedId, "internal", "the seed gave no answer", {});
    if (o.ok) return resultFor(command, situation, seedId, "ok", null, { from_state: o.from, to_state: o.to });
    return resultFor(command, situation, seedId, o.code, o.error, o.guard ? { from_state: o.from, to_state: o.to, guard: o.guard, values: o.values } : { from_state: o.from, to_state: o.to });
  }
  // Every seed of the layer: one result, with each seed's answer in details (see MAX_SEED_LINES).
  const failed = outcomes.find((o): o is Failed => !o.ok);
  const lines = outcomes.map((o) => (o.ok ? { seed_id: o.seedId, code: "ok", from_state: o.from } : { seed_id: o.seedId, code: o.code, error: o.error }));
  const { lines: results, omitted } = listed(lines, (line) => line.code !== "ok");
  const moved = outcomes.length - outcomes.filter((o) => !o.ok).length;
  return resultFor(
    command,
    situation,
    null,
    failed ? failed.code : "ok",
    failed ? `${outcomes.length - moved} of ${outcomes.length} seeds refused; first: seed ${failed.seedId}: ${failed.error}` : null,
    omitted > 0 ? { moved, results, omitted } : { moved, results },
  );
};

/** What the seeds answered to each order of a batch, by the order's command id. */
interface Heard {
  moved: number;
  refused: Failed | Extract<BlueprintAnswer, { ok: false }> | undefined;
  taken: boolean;
}

const heardByOrder = (said: Said): Map<string, Heard> => {
  const heard = new Map<string, Heard>();
  const of = (commandId: string | null): Heard | undefined => {
    if (commandId === null) return undefined;
    let h = heard.get(commandId);
    if (h === undefined) heard.set(commandId, (h = { moved: 0, refused: undefined, taken: false }));
    return h;
  };
  for (const o of said.outcomes) {
    const h = of(o.commandId);
    if (h === undefined) continue;
    if (o.ok) h.moved++;
    else h.refused ??= o;
  }
  for (const b of said.blueprints) {
    const h = of(b.commandId);
    if (h === undefined) continue;
    if (b.ok) h.taken = true;
    else h.refused ??= b;
  }
  return heard;
};

/**
 * A batch's one result, with a line per order. A line says applied only when its seed said so
 * (an accepted outcome, a blueprint taken): an order whose seed crashed, or gave no answer, is
 * not reported applied.
 */
const batchResult = (command: Extract<Command, { message_type: "BatchCommand" }>, said: Said, situation: Situation): CommandResult => {
  const whole = said.refusals.find((r) => r.commandId === command.message_id);
  if (whole) return resultFor(command, situation, null, whole.code, whole.error, whole.details);
  const refusals = new Map<string, LayerResult>();
  for (const r of said.refusals) if (!refusals.has(r.commandId)) refusals.set(r.commandId, r);
  const heard = heardByOrder(said);
  const results = command.commands.map((c, index): BatchLine => {
    const line = { index, command_id: c.message_id, seed_id: c.seed_id };
    const refused = refusals.get(c.message_id);
    if (refused) {
      const failed: BatchLine = { ...line, applied: false, success: false, code: refused.code, error: refused.error };
      // Not applied because an earlier command failed (stop_on_error): say so, not just "internal".
      return refused.details.skipped === true ? { ...failed, skipped: true } : failed;
    }
    const h = heard.get(c.message_id);
    if (h?.refused) return { ...line, applied: false, success: false, code: h.refused.code, error: h.refused.error };
    const answered = c.message_type === "BlueprintUpdateCommand" ? h?.taken === true : (h?.moved ?? 0) > 0;
    // A whole-layer order was answered by the seeds that lived through the batch; one that crashed is not applied.
    const crashed = c.seed_id === null ? said.crashes.length > 0 : said.crashes.some((x) => x.seedId === c.seed_id);
    if (answered && !(c.seed_id === null && crashed)) return { ...line, applied: true, success: true, code: "ok" };
    const error = crashed ? (crashText(said) ?? "a seed crashed") : `seed ${c.seed_id ?? "(every seed)"} gave no answer`;
    return { ...line, applied: false, success: false, code: "internal", error };
  });
  const firstBad = results.find((r) => !r.success);
  const code = said.crashes.length > 0 ? "internal" : firstBad ? (firstBad.code as CommandResult["code"]) : "ok";
  return resultFor(command, situation, null, code, firstBad ? `command ${firstBad.index} failed: ${firstBad.error}` : crashText(said), { results });
};

const crashText = (said: Said): string | null =>
  said.crashes.length === 0
    ? null
    : said.crashes.map((c) => `seed ${c.seedId} crashed and was restarted from its last snapshot (${c.restoredState}): ${c.error}`).join("; ");

const resultOf = (command: Command, said: Said, situation: Situation): CommandResult => {
  if (command.message_type === "BatchCommand") return batchResult(command, said, situation);
  const refused = said.refusals[0];
  if (refused) return resultFor(command, situation, refused.seedId, refused.code, refused.error, refused.details);
  if (said.crashes.length > 0) return resultFor(command, situation, seedIdOf(command), "internal", crashText(said), { crashed: true, seeds: said.crashes.map((c) => c.seedId) });
  switch (command.message_type) {
    case "EmergencyStopCommand":
    case "ResumeCommand": {
      const moved = said.outcomes.filter((o) => o.ok).map((o) => ({ seed_id: o.seedId, from: o.from, to: o.to }));
      const seeds = moved.slice(0, MAX_SEED_LINES);
      const details = moved.length > seeds.length ? { stopped: said.stopped, seeds, moved: moved.length, omitted: moved.length - seeds.length } : { stopped: said.stopped, seeds };
      return resultFor(command, situation, command.message_type === "EmergencyStopCommand" ? command.seed_id : null, "ok", null, details);
    }
    case "BlueprintUpdateCommand": {
      const answer = said.blueprints.find((b) => b.commandId === command.message_id);
      if (answer === undefined) return resultFor(command, situation, command.seed_id, "internal", "the seed gave no answer", {});
      if (!answer.ok) return resultFor(command, situation, command.seed_id, answer.code, answer.error, {});
      return resultFor(command, situation, command.seed_id, "ok", null, { blueprint_id: command.blueprint_id, grafting_strategy: command.grafting_strategy });
    }
    case "LifecycleTransitionCommand":
      return lifecycleResult(command, command.seed_id, said.outcomes, situation);
  }
};

/** The answer to `command`: its one result, an event for every seed that moved, and one for every seed that took a blueprint. */
export const answerOf = (command: Command, said: Said, situation: Situation): Answer => {
  const blueprints = blueprintEventsOf(command, said, situation);
  return { result: resultOf(command, said, situation), transitions: transitionsOf(command, said, situation), ...(blueprints.length > 0 ? { blueprints } : {}) };
};

/**
 * A BlueprintEvent (`updated`) for every blueprint a seed took (its seed said so), naming the blueprint it replaced.
 * Its details carry what a trainer needs to validate the update in its data plane (docs/protocol.md "Blueprint
 * validation"): the command's id, its `validation_metrics` (the numeric ones) and `rollback_on_failure`, and, for a
 * command that puts a blueprint back after a failed validation, `metadata.rolls_back` as `rolls_back`.
 */
export const blueprintEventsOf = (command: Command, said: Pick<Said, "blueprints">, situation: Situation): BlueprintEvent[] => {
  if (said.blueprints.length === 0) return [];
  const events: BlueprintEvent[] = [];
  for (const update of blueprintUpdatesOf(command)) {
    const taken = said.blueprints.find((b) => b.ok && b.commandId === update.message_id && b.seedId === update.seed_id);
    if (taken === undefined || !taken.ok) continue;
    const rollsBack = update.metadata?.rolls_back ?? command.metadata?.rolls_back;
    events.push(
      blueprintEvent({
        source: situation.source,
        timestamp: situation.now / 1000,
        correlation_id: command.message_id,
        layer_id: situation.layerId,
        seed_id: update.seed_id,
        blueprint_id: update.blueprint_id,
        operation: "updated",
        previous_blueprint_id: taken.previousBlueprintId,
        metrics_delta: {},
        success: true,
        details: {
          grafting_strategy: update.grafting_strategy,
          command_id: update.message_id,
          validation_metrics: numericOf(update.validation_metrics),
          rollback_on_failure: update.rollback_on_failure,
          ...(typeof rollsBack === "string" ? { rolls_back: rollsBack } : {}),
        },
      }),
    );
  }
  return events;
};

/** The numeric entries of a map (validation_metrics may carry anything; thresholds are numbers). */
const numericOf = (map: Readonly<Record<string, unknown>>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(map)) if (typeof value === "number" && Number.isFinite(value)) out[key] = value;
  return out;
};

/** A StateTransitionEvent for every seed that moved. */
export const transitionsOf = (command: Command, said: Pick<Said, "outcomes">, situation: Situation): StateTransitionEvent[] => {
  const transitions: StateTransitionEvent[] = [];
  for (const o of said.outcomes) {
    if (!o.ok) continue;
    transitions.push(
      stateTransitionEvent({
        source: situation.source,
        timestamp: situation.now / 1000,
        correlation_id: command.message_id,
        layer_id: situation.layerId,
        seed_id: o.seedId,
        from_state: o.from,
        to_state: o.to,
        reason: o.reason,
        metrics_snapshot: o.metrics,
        transition_duration_ms: 0,
        triggered_by: triggeredBy(command),
        success: true,
      }),
    );
  }
  return transitions;
};
