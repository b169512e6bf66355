import { CustomCallback } from "@tensorflow/tfjs-layers";
import { advanceAlphas, DEFAULT_GRAFTING, type GraftingConfig } from "./grafting.ts";
import { SEED_METRIC_COLUMNS, type KasminaHooks, type SeedMetricsBatch } from "./hooks.ts";
import type { KasminaLayer } from "./layer.ts";
import { TELEMETRY_COLUMNS, type TelemetryColumn } from "./telemetry.ts";

/**
 * The trainer's side of the data plane, for any training loop: it counts steps, arms the layers'
 * telemetry every `telemetryEvery` steps and reads it out once per window, advances every
 * grafting seed's alpha once per step, and reports epochs and per-seed metrics through the hooks,
 * one call per layer each time.
 *
 * With `model.fit`: `model.fit(x, y, { callbacks: [trainer.callback()] })`.
 * With a custom loop:
 *   trainer.beforeStep(); optimizer.minimize(() => loss(model.apply(x, { training: true }), y));
 *   await trainer.afterStep(); ... and trainer.endEpoch() after each epoch.
 *
 * Ticks: the seeds' clock (hooks.onEpoch) runs once per epoch by default, or once every
 * `tickEvery` steps. The lifecycle's minimum dwell per state (machines/lifecycle.ts
 * DEFAULT_GUARDS.minEpochs: 100 ticks in TRAINING, 50 in GRAFTING...) is counted in these
 * ticks, so a short run that must see seeds through their lifecycle picks a small tick
 * rather than switching the dwell guards off.
 */
export interface KasminaTrainerOptions {
  /** The Kasmina layers of the model it trains. */
  readonly layers: readonly KasminaLayer[];
  /** Where epochs, guard metrics and telemetry go; `trainerHooks(system)` sends them to a system's layer actors. Default: nowhere. */
  readonly hooks?: KasminaHooks;
  /** Steps per telemetry window (the K of "read out every K steps"). 0 turns telemetry off. Default 10. */
  readonly telemetryEvery?: number;
  /** Grafting ramp parameters (rampSteps 50, maxDrift 0.1, maxVariance 0.05, momentum 0.9...); what is not given keeps its default. */
  readonly grafting?: Partial<GraftingConfig>;
  /** Weight of the newest window in the activation-norm statistics behind stability. Default 0.3. */
  readonly stabilitySmoothing?: number;
  /**
   * Training steps per tick of the seeds' clock. 0 (the default): a tick is an epoch, sent by
   * `endEpoch`. N > 0: `afterStep` sends one tick (onEpoch(layerId, 1) per layer) every N steps
   * and `endEpoch` sends none, so the dwell guards count N-step ticks whatever the epoch size.
   */
  readonly tickEvery?: number;
  /**
   * Where the seeds' `performance_delta` comes from. "estimate" (default): the first-order
   * estimate from the training batch (telemetry.ts), reported with the guard metrics. "held_out":
   * the caller measures it on held-out data (measureSeedContributions) and reports it itself; the
   * trainer then leaves it out of its guard metrics and calls the estimate
   * `performance_delta_estimate` in its telemetry, so nothing downstream (a layer's guards,
   * Tamiyo) takes one for the other.
   */
  readonly performanceDelta?: "estimate" | "held_out";
}

/** What the trainer remembers per layer between windows. */
interface LayerTrack {
  readonly layer: KasminaLayer;
  readonly steps: Uint32Array;
  readonly drift: Float32Array;
  readonly variance: Float32Array;
  readonly performanceDelta: Float32Array;
  readonly normMean: Float32Array;
  readonly normVar: Float32Array;
  readonly samples: Uint32Array;
  readonly stateAtSample: Uint8Array;
  readonly nextAlpha: Float32Array;
}

const col = (c: TelemetryColumn): number => TELEMETRY_COLUMNS.indexOf(c);
const WIDTH = TELEMETRY_COLUMNS.length;

/**
 * Drives the seeds of some KasminaLayers from a training loop (see KasminaTrainerOptions): ramps
 * grafting seeds' alpha every step, reads telemetry every `telemetryEvery` steps, and reports
 * epochs and per-seed guard metrics through its hooks. Call `beforeStep`, `afterStep` and
 * `endEpoch` around your own steps, or pass `callback()` to `model.fit`. Bad option values throw a RangeError.
 */
export class KasminaTrainer {
  private readonly tracks: LayerTrack[];
  private readonly grafting: GraftingConfig;
  private readonly telemetryEvery: number;
  private readonly smoothing: number;
  private readonly tickEvery: number;
  private readonly heldOutDelta: boolean;
  /** The telemetry tensor's column names as reported (TELEMETRY_COLUMNS, the estimate renamed under "held_out"). */
  private readonly reportedColumns: readonly string[];
  private stepCount = 0;
  private windowStart = 1;
  private armed = false;

  constructor(private readonly options: KasminaTrainerOptions) {
    this.grafting = { ...DEFAULT_GRAFTING, ...options.grafting };
    this.telemetryEvery = options.telemetryEvery ?? 10;
    this.smoothing = options.stabilitySmoothing ?? 0.3;
    this.tickEvery = options.tickEvery ?? 0;
    this.heldOutDelta = options.performanceDelta === "held_out";
    this.reportedColumns = this.heldOutDelta ? TELEMETRY_COLUMNS.map((c) => (c === "performance_delta" ? "performance_delta_estimate" : c)) : TELEMETRY_COLUMNS;
    if (!Number.isInteger(this.telemetryEvery) || this.telemetryEvery < 0) throw new RangeError("telemetryEvery must be a non-negative integer");
    if (!Number.isInteger(this.tickEvery) || this.tickEvery < 0) throw new RangeError("tickEvery must be a non-negative integer");
    this.tracks = options.layers.map((layer) => {
      const n = layer.numSeeds;
      const unknown = () => new Float32Array(n).fill(Number.NaN);
      return {
        layer,
        steps: new Uint32Array(n),
        drift: unknown(),
        variance: unknown(),
        performanceDelta: unknown(),
        normMean: new Float32Array(n),
        normVar: new Float32Array(n),
        samples: new Uint32Array(n),
        stateAtSample: layer.table.state.slice(),
        nextAlpha: new Float32Array(n),
      };
    });
  }

  /** Steps completed so far. */
  get step(): number {
    return this.stepCount;
  }

  /** Call before each training step: arms telemetry on the last step of a window. */
  beforeStep(): void {
    this.armed = this.telemetryEvery > 0 && (this.stepCount + 1) % this.telemetryEvery === 0;
    if (this.armed) for (const t of this.tracks) t.layer.armTelemetry();
  }

  /** Call after each training step (after the optimizer applied its update). */
  async afterStep(): Promise<void> {
    this.stepCount++;
    if (this.armed) {
      this.armed = false;
      for (const track of this.tracks) await this.readWindow(track);
      this.windowStart = this.stepCount + 1;
    }
    for (const track of this.tracks) this.advance(track);
    // After the window's metrics went out, so the guards a tick wakes judge this window's values.
    if (this.tickEvery > 0 && this.stepCount % this.tickEvery === 0) this.tick(1);
  }

  /** Call after each epoch: one onEpoch per layer, unless ticks are counted in steps (`tickEvery`). */
  endEpoch(epochs = 1): void {
    if (this.tickEvery === 0) this.tick(epochs);
  }

  private tick(ticks: number): void {
    for (const { layer } of this.tracks) this.options.hooks?.onEpoch?.(layer.layerId, ticks);
  }

  /** The same three calls as a tfjs callback for `model.fit`. */
  callback(): CustomCallback {
    return new CustomCallback({
      onBatchBegin: async () => this.beforeStep(),
      onBatchEnd: async () => this.afterStep(),
      onEpochEnd: async () => this.endEpoch(),
    });
  }

  private async readWindow(track: LayerTrack): Promise<void> {
    const tensor = track.layer.takeTelemetry();
    if (!tensor) return;
    const rows = (await tensor.data()) as Float32Array;
    tensor.dispose();
    const { layer } = track;
    this.absorb(track, rows);
    const hooks = this.options.hooks;
    hooks?.onTelemetry?.(layer.layerId, this.stepCount, rows, this.reportedColumns);
    hooks?.onSeedMetrics?.(layer.layerId, { fromStep: this.windowStart, toStep: this.stepCount }, this.seedMetrics(track, rows));
  }

  /** Updates the grafting signals and the activation-norm statistics behind stability. */
  private absorb(track: LayerTrack, rows: Float32Array): void {
    const state = track.layer.table.state;
    const lambda = this.smoothing;
    for (let s = 0; s < track.layer.numSeeds; s++) {
      const at = s * WIDTH;
      track.drift[s] = rows[at + col("drift")]!;
      track.performanceDelta[s] = rows[at + col("performance_delta")]!;
      const norm = rows[at + col("activation_norm")]!;
      // A new state is a new regime (alpha jumps, weights freeze): its history does not count.
      if (state[s] !== track.stateAtSample[s] || !Number.isFinite(norm)) track.samples[s] = 0;
      track.stateAtSample[s] = state[s]!;
      if (!Number.isFinite(norm)) continue;
      if (track.samples[s] === 0) {
        track.normMean[s] = norm;
        track.normVar[s] = 0;
      } else {
        const d = norm - track.normMean[s]!;
        track.normMean[s] = track.normMean[s]! + lambda * d;
        track.normVar[s] = (1 - lambda) * (track.normVar[s]! + lambda * d * d);
      }
      track.samples[s] = track.samples[s]! + 1;
      const mean = track.normMean[s]!;
      track.variance[s] = track.samples[s]! < 2 ? Number.NaN : track.normVar[s]! / Math.max(mean * mean, 1e-12);
    }
  }

  private seedMetrics(track: LayerTrack, rows: Float32Array): SeedMetricsBatch {
    const n = track.layer.numSeeds;
    const width = SEED_METRIC_COLUMNS.length;
    const out = new Float32Array(n * width);
    for (let s = 0; s < n; s++) {
      const variance = track.variance[s]!;
      out[s * width] = rows[s * WIDTH + col("reconstruction_loss")]!;
      out[s * width + 1] = this.heldOutDelta ? Number.NaN : rows[s * WIDTH + col("performance_delta")]!;
      out[s * width + 2] = rows[s * WIDTH + col("drift")]!;
      out[s * width + 3] = Number.isFinite(variance) ? 1 / (1 + variance) : Number.NaN;
      out[s * width + 4] = rows[s * WIDTH + col("alpha")]!;
    }
    return { numSeeds: n, columns: SEED_METRIC_COLUMNS, rows: out };
  }

  private advance(track: LayerTrack): void {
    const table = track.layer.table;
    advanceAlphas(
      {
        state: table.state,
        strategy: table.strategy,
        alpha: table.alpha,
        steps: track.steps,
        drift: track.drift,
        variance: track.variance,
        performanceDelta: track.performanceDelta,
      },
      this.grafting,
      track.nextAlpha,
    );
    table.setAlphas(track.nextAlpha);
  }
}
