/**
 * Protocol commands as the layer machine's events (machines/layer.ts): pure translation, no
 * decision. What a command may do is decided by the layer and its seeds.
 */
import { parseSeedState, type SeedState } from "../../machines/lifecycle.ts";
import type { LayerEvent, SeedOrder } from "../../machines/layer.ts";
import { GUARD_METRICS, type Metrics } from "../../machines/seed-rules.ts";
import type { BatchableCommand, Command } from "../protocol/messages.ts";

/**
 * Numbers a command carries for the validators: `parameters.metrics`, or numeric parameters.
 * Only the metrics the validators read (GUARD_METRICS): a seed keeps what it is told, persisted
 * and quoted by every transition event, so any other name would only grow every snapshot.
 */
export const metricsOf = (parameters: Readonly<Record<string, unknown>>): Metrics => {
  const nested = parameters.metrics;
  const source = nested && typeof nested === "object" ? (nested as Record<string, unknown>) : parameters;
  const metrics: Record<string, number> = {};
  for (const key of GUARD_METRICS) {
    const v = Object.hasOwn(source, key) ? source[key] : undefined;
    if (typeof v === "number" && Number.isFinite(v)) metrics[key] = v;
  }
  return metrics;
};

/** The leading Tamiyo's fencing token a command carries in `metadata.leader_token` (docs/protocol.md), if any. */
export const leaderOf = (c: { readonly metadata?: Readonly<Record<string, unknown>> | null }): number | undefined => {
  const token = c.metadata?.leader_token;
  return typeof token === "number" && Number.isFinite(token) ? token : undefined;
};

/** `leader`: the batch's token, for the commands of a batch (they are fenced as the batch is). */
export const orderOf = (c: BatchableCommand, at: number, leader: number | undefined = leaderOf(c)): SeedOrder =>
  c.message_type === "LifecycleTransitionCommand"
    ? {
        kind: "lifecycle",
        commandId: c.message_id,
        seedId: c.seed_id,
        target: parseSeedState(c.target_state) ?? (c.target_state as SeedState),
        force: c.force,
        metrics: metricsOf(c.parameters),
        reason: c.reason,
        at,
        ...(leader !== undefined ? { leader } : {}),
      }
    : { kind: "blueprint", commandId: c.message_id, seedId: c.seed_id, blueprintId: c.blueprint_id, strategy: c.grafting_strategy, ...(leader !== undefined ? { leader } : {}) };

/** The layer event a command becomes; `at` is the time it is applied (ms), recorded in the seeds' history. */
export const layerEventOf = (command: Command, at: number): LayerEvent => {
  switch (command.message_type) {
    case "LifecycleTransitionCommand":
    case "BlueprintUpdateCommand":
      return { type: "command", order: orderOf(command, at) };
    case "BatchCommand":
      return {
        type: "batch",
        commandId: command.message_id,
        orders: command.commands.map((c) => orderOf(c, at, leaderOf(command) ?? leaderOf(c))),
        atomic: command.atomic,
        stopOnError: command.stop_on_error,
      };
    case "EmergencyStopCommand":
      return { type: "emergency_stop", commandId: command.message_id, seedId: command.seed_id, reason: command.reason, at };
    case "ResumeCommand":
      return { type: "resume", commandId: command.message_id };
  }
};

/** Blueprint updates in a command (alone or in a batch): they change a seed without a transition. */
export const blueprintUpdatesOf = (command: Command): ReadonlyArray<Extract<BatchableCommand, { message_type: "BlueprintUpdateCommand" }>> => {
  const orders = command.message_type === "BlueprintUpdateCommand" ? [command] : command.message_type === "BatchCommand" ? command.commands : [];
  return orders.filter((c): c is Extract<BatchableCommand, { message_type: "BlueprintUpdateCommand" }> => c.message_type === "BlueprintUpdateCommand");
};
