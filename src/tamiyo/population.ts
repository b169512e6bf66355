/**
 * Tamiyo's picture of the seeds it steers, built only from what the streams carry: transition
 * events and command results (the event stream), ticks, per-seed metrics and validation losses
 * (the telemetry stream). Nothing here reads a layer's actor or state table, so the same
 * picture forms in the training process and in a Tamiyo of its own.
 *
 * Also the reference's population transitions: seeds picked by selection criteria (from which
 * states, minimum performance, maximum failures) and moved in BatchCommands of a bounded size.
 */
import { guardConfig, isTerminal, type GuardConfig, type GuardOverrides, type SeedState } from "../../machines/lifecycle.ts";

/** A blueprint kind Tamiyo may germinate in a layer, and what one seed of it costs. */
export interface BlueprintOption {
  readonly id: string;
  /** Parameters one seed's blueprint adds once grafted (the data plane's `blueprintParameterCount`). */
  readonly params: number;
}

/** What Tamiyo is told about a layer when it starts: its shape and what may grow there. */
export interface LayerProfile {
  readonly layerId: string;
  readonly numSeeds: number;
  /** Parameters of the host part of the layer (with its share of the network, if the caller wants the budget relative to that). */
  readonly hostParams: number;
  /** Kinds in order of preference before anything was measured. */
  readonly blueprints: readonly BlueprintOption[];
  /** The layer's validator thresholds (the same overrides its LayerSpec has). */
  readonly guards?: GuardOverrides;
}

export interface SeedView {
  readonly seedId: number;
  state: SeedState;
  blueprint: string | null;
  /** The layer's tick count when the seed entered its state, as Tamiyo saw it. */
  enteredTick: number;
  /** Commands about this seed that failed for reasons other than a guard that may yet hold. */
  failures: number;
  /** Latest value of each metric reported for the seed. */
  readonly metrics: Record<string, number>;
  /** A command of Tamiyo's about this seed awaits its result. */
  busy: boolean;
}

export interface LayerView {
  readonly profile: LayerProfile;
  readonly guards: GuardConfig;
  /** Ticks the layer counted (performance_summary.epoch of its tick reports). */
  tick: number;
  stopped: boolean;
  readonly seeds: SeedView[];
  /** Validation losses in the order they were reported (performance_summary.val_loss). */
  readonly valLoss: number[];
  /** Critical alerts without a seed, since a seed of the layer last germinated, or the layer stopped. */
  criticalAlerts: number;
}

/** Parameters one seed of `blueprint` adds in the profile's layer (0 for a kind it does not offer). */
export const costIn = (profile: LayerProfile, blueprint: string | null): number => profile.blueprints.find((k) => k.id === blueprint)?.params ?? 0;

/** A telemetry report as Tamiyo reads it (a TelemetryFrame, or anything shaped like one). */
export interface ReportView {
  readonly layerId: string;
  readonly performanceSummary: Readonly<Record<string, unknown>>;
  readonly seeds: ArrayLike<number>;
  readonly columns: readonly string[];
  readonly values: readonly ArrayLike<number>[];
}

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Validation losses kept per layer. */
const VAL_LOSS_HISTORY = 256;

export class Population {
  private readonly layers = new Map<string, LayerView>();

  constructor(profiles: readonly LayerProfile[]) {
    for (const profile of profiles) {
      const seeds: SeedView[] = Array.from({ length: profile.numSeeds }, (_, seedId) => ({
        seedId,
        state: "DORMANT" as SeedState,
        blueprint: null,
        enteredTick: 0,
        failures: 0,
        metrics: {},
        busy: false,
      }));
      this.layers.set(profile.layerId, { profile, guards: guardConfig(profile.guards), tick: 0, stopped: false, seeds, valLoss: [], criticalAlerts: 0 });
    }
  }

  get layerIds(): readonly string[] {
    return [...this.layers.keys()];
  }

  layer(layerId: string): LayerView | undefined {
    return this.layers.get(layerId);
  }

  all(): readonly LayerView[] {
    return [...this.layers.values()];
  }

  seed(layerId: string, seedId: number): SeedView | undefined {
    return this.layers.get(layerId)?.seeds[seedId];
  }

  /**
   * A seed moved (its StateTransitionEvent, or the result of Tamiyo's own command, whichever
   * comes first: hearing both changes nothing the second time). The metrics a seed had belong to
   * its old state: the new state starts clean, except blueprint-independent ones.
   */
  transition(layerId: string, seedId: number, to: SeedState): void {
    const layer = this.layers.get(layerId);
    const seed = layer?.seeds[seedId];
    if (!layer || !seed || seed.state === to) return;
    seed.state = to;
    seed.enteredTick = layer.tick;
    for (const key of Object.keys(seed.metrics)) if (STATE_BOUND_METRICS.has(key)) delete seed.metrics[key];
    if (to === "DORMANT") seed.blueprint = null;
  }

  blueprint(layerId: string, seedId: number, blueprintId: string): void {
    const seed = this.seed(layerId, seedId);
    if (seed) seed.blueprint = blueprintId;
  }

  /** A report from the layer's telemetry stream: ticks, validation loss, and per-seed metrics. */
  observe(report: ReportView): void {
    const layer = this.layers.get(report.layerId);
    if (!layer) return;
    const summary = report.performanceSummary;
    if (finite(summary["epoch"]) && summary["epoch"] > layer.tick) layer.tick = summary["epoch"];
    if (finite(summary["val_loss"])) {
      layer.valLoss.push(summary["val_loss"]);
      // A plateau is judged over the last epochs; a Tamiyo that runs for months keeps a bounded history.
      if (layer.valLoss.length > VAL_LOSS_HISTORY) layer.valLoss.splice(0, layer.valLoss.length - VAL_LOSS_HISTORY);
    }
    for (let i = 0; i < report.seeds.length; i++) {
      const seed = layer.seeds[report.seeds[i]!];
      if (!seed) continue;
      for (let c = 0; c < report.columns.length; c++) {
        const v = report.values[c]![i]!;
        if (Number.isFinite(v)) seed.metrics[report.columns[c]!] = v;
      }
    }
  }

  /** Parameters one seed of `blueprint` adds in this layer (0 for a kind the profile does not offer). */
  costOf(layerId: string, blueprint: string | null): number {
    const layer = this.layers.get(layerId);
    return layer ? costIn(layer.profile, blueprint) : 0;
  }

  stopped(layerId: string, stopped: boolean): void {
    const layer = this.layers.get(layerId);
    if (layer) {
      layer.stopped = stopped;
      layer.criticalAlerts = 0;
    }
  }
}

/**
 * Metrics that describe a seed's blueprint in one state and mean nothing in the next (a
 * reconstruction loss after grafting, an evaluation's delta after fine-tuning began): cleared on
 * every transition so a stale number never moves a seed on.
 */
const STATE_BOUND_METRICS: ReadonlySet<string> = new Set(["reconstruction_loss", "performance_delta", "accuracy_delta", "total_improvement", "final_stability"]);

/** The reference's selection criteria for a population transition. */
export interface SelectionCriteria {
  /** Only seeds in these states. Default: any non-terminal state. */
  readonly fromStates?: readonly SeedState[];
  /** Only seeds whose `performanceMetric` is at least this (a seed that never reported it is left out). */
  readonly minPerformance?: number;
  /** The metric `minPerformance` reads. Default "performance_delta". */
  readonly performanceMetric?: string;
  /** Only seeds with at most this many failed commands. */
  readonly maxFailures?: number;
}

/** Seeds matching `criteria`, ascending by id; never a terminal seed, never one already in `target`. */
export const selectSeeds = (seeds: readonly SeedView[], target: SeedState, criteria: SelectionCriteria = {}): SeedView[] => {
  const metric = criteria.performanceMetric ?? "performance_delta";
  return seeds.filter((seed) => {
    if (seed.state === target || isTerminal(seed.state)) return false;
    if (criteria.fromStates && !criteria.fromStates.includes(seed.state)) return false;
    if (criteria.maxFailures !== undefined && seed.failures > criteria.maxFailures) return false;
    if (criteria.minPerformance !== undefined) {
      const value = seed.metrics[metric];
      if (value === undefined || value < criteria.minPerformance) return false;
    }
    return true;
  });
};

/** Splits `seedIds` into batches of at most `batchSize`, in order. */
export const batchesOf = <T>(items: readonly T[], batchSize: number): T[][] => {
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += batchSize) out.push(items.slice(i, i + batchSize));
  return out;
};
