/**
 * Plans to protocol commands. A germination is one atomic BatchCommand (the blueprint, then
 * DORMANT -> GERMINATED), so a seed never germinates without the kind Tamiyo chose for it; a
 * population transition is BatchCommands of at most `maxBatchSize`, not atomic, as the
 * reference's `transition_population`.
 */
import type { SeedState } from "../../machines/lifecycle.ts";
import { batchCommand, blueprintUpdateCommand, emergencyStopCommand, lifecycleCommand } from "../protocol/make.ts";
import type { BatchCommand, Command } from "../protocol/messages.ts";
import type { ResolvedTamiyoConfig } from "./config.ts";
import type { Plan } from "./policy.ts";
import { batchesOf } from "./population.ts";

export interface CommandContext {
  readonly source: string;
  /** Seconds since the epoch. */
  readonly timestamp: number;
  readonly config: ResolvedTamiyoConfig;
}

export const commandOf = (plan: Plan, ctx: CommandContext): Command => {
  const common = { source: ctx.source, timestamp: ctx.timestamp };
  const order = plan.order;
  switch (order.type) {
    case "stop":
      return emergencyStopCommand({ ...common, layer_id: plan.layerId, reason: `tamiyo: ${plan.reason}` });
    case "transition":
      return lifecycleCommand({
        ...common,
        layer_id: plan.layerId,
        seed_id: plan.seedId,
        target_state: order.target,
        parameters: Object.keys(order.metrics).length > 0 ? { metrics: order.metrics } : {},
        reason: plan.reason,
        timeout_ms: ctx.config.commandTimeoutMs,
      });
    case "population":
      return populationCommands(plan.layerId, order.seeds, order.target, Math.max(1, order.seeds.length), ctx, plan.reason)[0]!;
    case "germinate":
      return batchCommand({
        ...common,
        atomic: true,
        stop_on_error: true,
        timeout_ms: ctx.config.commandTimeoutMs,
        commands: [
          blueprintUpdateCommand({ ...common, layer_id: plan.layerId, seed_id: plan.seedId!, blueprint_id: order.blueprint, grafting_strategy: ctx.config.graftingStrategy }),
          lifecycleCommand({ ...common, layer_id: plan.layerId, seed_id: plan.seedId, target_state: "GERMINATED", reason: plan.reason }),
        ],
      });
  }
};

/** BatchCommands moving `seedIds` of one layer to `target`, at most `batchSize` each. */
export const populationCommands = (layerId: string, seedIds: readonly number[], target: SeedState, batchSize: number, ctx: CommandContext, reason: string): BatchCommand[] =>
  batchesOf(seedIds, batchSize).map((ids) =>
    batchCommand({
      source: ctx.source,
      timestamp: ctx.timestamp,
      atomic: false,
      stop_on_error: false,
      timeout_ms: ctx.config.commandTimeoutMs,
      commands: ids.map((seed_id) => lifecycleCommand({ source: ctx.source, timestamp: ctx.timestamp, layer_id: layerId, seed_id, target_state: target, reason })),
    }),
  );
