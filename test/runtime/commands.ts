/**
 * Builders of the commands a layer hosts, with the protocol's defaults, so tests say only what
 * matters to them. Also the hand-written route from DORMANT to each lifecycle state, used to
 * place seeds (written here, not derived from machines/lifecycle.ts, so a wrong edge table
 * cannot hide behind itself).
 */
import { randomUUID } from "node:crypto";
import type { SeedState } from "../../machines/lifecycle.ts";
import type { LayerHost } from "../../src/runtime/layer-host.ts";
import type { Command as HostedCommand } from "../../src/protocol/messages.ts";

export type Lifecycle = Extract<HostedCommand, { message_type: "LifecycleTransitionCommand" }>;
export type Blueprint = Extract<HostedCommand, { message_type: "BlueprintUpdateCommand" }>;
export type Batch = Extract<HostedCommand, { message_type: "BatchCommand" }>;
export type EmergencyStop = Extract<HostedCommand, { message_type: "EmergencyStopCommand" }>;
export type Resume = Extract<HostedCommand, { message_type: "ResumeCommand" }>;

const envelope = (source: string) => ({
  message_id: randomUUID(),
  timestamp: Date.now() / 1000,
  source,
  version: "1.0" as const,
});

export interface LifecycleOptions {
  readonly force?: boolean;
  readonly metrics?: Record<string, number>;
  readonly reason?: string;
  readonly source?: string;
  readonly timeoutMs?: number;
  readonly metadata?: Record<string, unknown>;
}

export const lifecycle = (layerId: string, seedId: number | null, target: string, options: LifecycleOptions = {}): Lifecycle => ({
  ...envelope(options.source ?? "test"),
  ...(options.metadata ? { metadata: options.metadata } : {}),
  message_type: "LifecycleTransitionCommand",
  layer_id: layerId,
  seed_id: seedId,
  target_state: target as SeedState,
  parameters: options.metrics ? { metrics: options.metrics } : {},
  priority: "normal",
  timeout_ms: options.timeoutMs ?? 5_000,
  force: options.force ?? false,
  reason: options.reason ?? "",
});

export const blueprint = (
  layerId: string,
  seedId: number,
  blueprintId: string,
  strategy: Blueprint["grafting_strategy"] = "linear",
): Blueprint => ({
  ...envelope("test"),
  message_type: "BlueprintUpdateCommand",
  layer_id: layerId,
  seed_id: seedId,
  blueprint_id: blueprintId,
  grafting_strategy: strategy,
  configuration: {},
  rollback_on_failure: true,
  validation_metrics: {},
  priority: "normal",
  timeout_ms: 10_000,
});

export const batch = (
  commands: ReadonlyArray<Lifecycle | Blueprint>,
  options: { readonly atomic?: boolean; readonly stopOnError?: boolean } = {},
): Batch => ({
  ...envelope("test"),
  message_type: "BatchCommand",
  commands: [...commands],
  atomic: options.atomic ?? true,
  stop_on_error: options.stopOnError ?? true,
  priority: "normal",
  timeout_ms: 30_000,
});

export const emergencyStop = (layerId: string | null, seedId: number | null = null, reason = "operator stop"): EmergencyStop => ({
  ...envelope("test"),
  message_type: "EmergencyStopCommand",
  layer_id: layerId,
  seed_id: seedId,
  reason,
  priority: "critical",
  timeout_ms: 1_000,
});

export const resume = (layerId: string, reason = "operator resume"): Resume => ({
  ...envelope("test"),
  message_type: "ResumeCommand",
  layer_id: layerId,
  reason,
  priority: "high",
  timeout_ms: 1_000,
});

/** How a seed gets from DORMANT to each state, one edge at a time. */
export const ROUTE: Readonly<Record<SeedState, readonly SeedState[]>> = {
  DORMANT: [],
  GERMINATED: ["GERMINATED"],
  TRAINING: ["GERMINATED", "TRAINING"],
  GRAFTING: ["GERMINATED", "TRAINING", "GRAFTING"],
  STABILIZATION: ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION"],
  EVALUATING: ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING"],
  FINE_TUNING: ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"],
  FOSSILIZED: ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"],
  CULLED: ["GERMINATED", "TRAINING", "CULLED"],
  CANCELLED: ["GERMINATED", "CANCELLED"],
  ROLLED_BACK: ["GERMINATED", "TRAINING", "GRAFTING", "ROLLED_BACK"],
};

/** Forces one seed of a hosted layer along ROUTE to `state`; fails loudly if any step is refused. */
export const placeSeed = (host: LayerHost, seedId: number, state: SeedState): void => {
  for (const target of ROUTE[state]) {
    const { result } = host.apply(lifecycle(host.layerId, seedId, target, { force: true, reason: "placing" }));
    if (!result.success) throw new Error(`placing seed ${seedId} at ${state}: ${target} refused: ${result.code} ${result.error}`);
  }
};
