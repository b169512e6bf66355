import type { TelemetrySink } from "./telemetry.ts";

/**
 * What the data plane tells the rest of esper. The runtime wires these to the layer actor (in
 * process) or to the layer's telemetry/event streams (across processes). Every hook is called
 * once per layer per occasion, with the whole layer's data, never once per seed, so one call
 * can become one message.
 */
export interface KasminaHooks {
  /**
   * Ticks elapsed for every seed of the layer (what the seeds' minimum-epoch guards count): an
   * epoch by default, or `tickEvery` steps (KasminaTrainerOptions). Once per layer per tick. The trainer does not touch the state table's epochsInState: the
   * layer actor owns the lifecycle and mirrors it (StateTable.tick) when it applies the tick.
   */
  readonly onEpoch?: (layerId: string, epochs: number) => void;
  /** The guard metrics of every seed, once per layer per telemetry window. */
  readonly onSeedMetrics?: (layerId: string, window: MetricsWindow, metrics: SeedMetricsBatch) => void;
  /** The full telemetry tensor of the window (telemetry.ts), for the telemetry publisher. */
  readonly onTelemetry?: TelemetrySink;
}

/** Training steps (1-based, inclusive) the window covers; metrics were sampled on its last step. */
export interface MetricsWindow {
  readonly fromStep: number;
  readonly toStep: number;
}

/**
 * Per-seed metrics the seed guards read, row-major `[seeds x columns]`; NaN where a metric does
 * not apply to the seed's state (a guard must treat NaN as "not met"):
 * - reconstruction_loss: the TRAINING objective (TRAINING -> GRAFTING needs <= 0.01);
 * - performance_delta: first-order loss improvement from the seed's graft, in loss units
 *   (EVALUATING -> FINE_TUNING needs > 0);
 * - drift: ||alpha * blueprint|| / ||host chunk||;
 * - stability_score: 1 / (1 + relative variance of the seed's activation norm across windows),
 *   in (0, 1], 1 = steady (the stability guards' `stability_score` / `final_stability`);
 * - alpha: the blend the seed ran with.
 */
export const SEED_METRIC_COLUMNS = ["reconstruction_loss", "performance_delta", "drift", "stability_score", "alpha"] as const;
export type SeedMetricColumn = (typeof SEED_METRIC_COLUMNS)[number];

/**
 * The guard metrics of every seed of one layer for one telemetry window, as `KasminaHooks.onSeedMetrics` receives them:
 * `rows` is `[numSeeds x columns.length]`, row-major, NaN where a metric does not apply (or, under `performanceDelta:
 * "held_out"`, for performance_delta, which the caller measures). What each column means is listed above SEED_METRIC_COLUMNS.
 */
export interface SeedMetricsBatch {
  readonly numSeeds: number;
  /** Column names, in row order: reconstruction_loss, performance_delta, drift, stability_score, alpha. */
  readonly columns: readonly SeedMetricColumn[];
  /** Seed s's value of column c is `rows[s * columns.length + c]`. */
  readonly rows: Float32Array;
}

export const seedMetric = (batch: SeedMetricsBatch, seed: number, column: SeedMetricColumn): number =>
  batch.rows[seed * batch.columns.length + batch.columns.indexOf(column)]!;

/** docs/protocol.md CheckpointEvent, the fields the data plane knows (the runtime adds the envelope). */
export interface CheckpointEventFields {
  readonly layer_id: string;
  /** The seed a seed-scoped checkpoint holds; null for a whole-layer checkpoint. */
  readonly seed_id: number | null;
  readonly checkpoint_id: string;
  readonly operation: "created" | "recovered";
  readonly checkpoint_size_bytes: number;
  readonly success: boolean;
  readonly error: string | null;
}

/** docs/protocol.md BlueprintEvent, the fields the data plane knows. */
export interface BlueprintEventFields {
  readonly layer_id: string;
  readonly seed_id: number;
  readonly blueprint_id: string;
  readonly operation: "updated" | "validated" | "rolled_back";
  readonly previous_blueprint_id: string | null;
  readonly metrics_delta: Readonly<Record<string, number>>;
  readonly success: boolean;
  readonly details: Readonly<Record<string, unknown>>;
}
