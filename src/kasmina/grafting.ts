import { GRAFTING_STRATEGIES, stateCode, type GraftingStrategy } from "../../machines/lifecycle.ts";
import { effectiveAlpha } from "./seed-roles.ts";

/**
 * Grafting strategies: how a GRAFTING seed's alpha climbs from 0 to 1. Each is a pure function
 * of (steps spent grafting, ramp length, the seed's recent metrics, its current alpha) -> the
 * next alpha in [0, 1]; `advanceAlphas` applies them to every seed of a layer at once with
 * typed-array math, once per training step.
 *
 * Metrics come from the telemetry window (telemetry.ts), so they lag by up to one window; a
 * metric that is not known yet is NaN, and each strategy says what it does then.
 */
export interface GraftSignals {
  /** ||alpha * blueprint|| / ||host chunk|| for the seed, from the latest window. */
  readonly drift: number;
  /** Relative variance of the seed's activation norm across recent windows (0 = steady). */
  readonly variance: number;
  /** First-order loss improvement due to the seed's graft (> 0 helps). */
  readonly performanceDelta: number;
}

/** What a grafting strategy is given for one seed on one step: the step, the ramp, its alpha, its latest signals (NaN while unknown). */
export interface GraftInput extends GraftSignals {
  /** Grafting steps taken so far, counting this one (1 on the first step). */
  readonly step: number;
  /** The ramp length (`GraftingConfig.rampSteps`). */
  readonly rampSteps: number;
  /** The seed's alpha before this step (0 on the first step). */
  readonly alpha: number;
}

export interface GraftingConfig {
  /** Steps a linear ramp takes from 0 to 1. Default 50. */
  readonly rampSteps: number;
  /** drift_controlled holds alpha while drift is above this, and backs off above twice this. Default 0.1. */
  readonly maxDrift: number;
  /** stability advances only while variance is at or below this. Default 0.05. */
  readonly maxVariance: number;
  /** momentum: how much of its speed the ramp keeps each step (0 = linear). Default 0.9. */
  readonly momentum: number;
  /** adaptive: speed multiplier bounds, slowest and fastest. Default 0.25 and 2. */
  readonly minGain: number;
  readonly maxGain: number;
  /** adaptive: the performance delta at which the speed is halfway to its bound. Default 0.01. */
  readonly deltaScale: number;
}

export const DEFAULT_GRAFTING: GraftingConfig = {
  rampSteps: 50,
  maxDrift: 0.1,
  maxVariance: 0.05,
  momentum: 0.9,
  minGain: 0.25,
  maxGain: 2,
  deltaScale: 0.01,
};

/** A grafting strategy: the seed's next alpha, in [0, 1], from its GraftInput and the trainer's grafting config. Pure. */
export type GraftingStrategyFn = (input: GraftInput, config: GraftingConfig) => number;

/**
 * Clamps to [0, 1]; within float32 rounding of 1 counts as 1, so additive ramps (alpha lives in
 * a Float32Array) finish; NaN (a corrupt alpha) restarts the ramp at 0.
 */
const clamp01 = (x: number): number => (Number.isNaN(x) || x <= 0 ? 0 : x >= 1 - 1e-6 ? 1 : x);
const known = (x: number): boolean => Number.isFinite(x);

/** alpha = step / ramp: the reference ramp, reaching 1 exactly at the end. */
const linear: GraftingStrategyFn = ({ step, rampSteps }) => clamp01(step / rampSteps);

/**
 * Linear speed while the graft moves the chunk little; holds while drift exceeds `maxDrift`
 * and steps back while it exceeds twice that, so a graft that disturbs the host waits for the
 * blueprint (still training under the task loss) to settle. Unknown drift does not hold.
 */
const driftControlled: GraftingStrategyFn = ({ alpha, rampSteps, drift }, { maxDrift }) => {
  const stepSize = 1 / rampSteps;
  if (known(drift) && drift > 2 * maxDrift) return clamp01(alpha - stepSize);
  if (known(drift) && drift > maxDrift) return clamp01(alpha);
  return clamp01(alpha + stepSize);
};

/**
 * Speed builds up like a ball with friction: v_t = m v_(t-1) + (1 - m) r, so the ramp starts
 * gently and then runs at rate r. Closed form, with r chosen so alpha is exactly 1 at the end:
 * alpha(t) = r (t - m (1 - m^t) / (1 - m)).
 */
const momentum: GraftingStrategyFn = ({ step, rampSteps }, { momentum: m }) => {
  if (m <= 0) return clamp01(step / rampSteps);
  const position = (t: number) => t - (m * (1 - m ** t)) / (1 - m);
  return clamp01(position(step) / position(rampSteps));
};

/**
 * Linear speed scaled by how the graft is doing: up to `maxGain` faster while it improves the
 * loss, down to `minGain` while it hurts, never stopping (the controller, not the ramp, decides
 * to give up on a seed). Unknown performance runs at linear speed.
 */
const adaptive: GraftingStrategyFn = ({ alpha, rampSteps, performanceDelta }, { minGain, maxGain, deltaScale }) => {
  const trend = known(performanceDelta) ? Math.tanh(performanceDelta / deltaScale) : 0;
  const gain = trend >= 0 ? 1 + trend * (maxGain - 1) : 1 + trend * (1 - minGain);
  return clamp01(alpha + gain / rampSteps);
};

/** Linear speed, but only while the seed's activations are steady (variance known and low). */
const stability: GraftingStrategyFn = ({ alpha, rampSteps, variance }, { maxVariance }) =>
  known(variance) && variance <= maxVariance ? clamp01(alpha + 1 / rampSteps) : clamp01(alpha);

/**
 * The five built-in grafting strategies by name (`linear`, `drift_controlled`, `momentum`, `adaptive`, `stability`): the ramps
 * the trainer applies to each GRAFTING seed according to its state-table `strategy`, each mapping a GraftInput to the next alpha.
 */
export const GRAFTING: Readonly<Record<GraftingStrategy, GraftingStrategyFn>> = {
  linear,
  drift_controlled: driftControlled,
  momentum,
  adaptive,
  stability,
};

/** Per-seed columns of one layer; `steps` (grafting steps per seed) is updated in place. */
export interface GraftingColumns {
  readonly state: Uint8Array;
  readonly strategy: Uint8Array;
  readonly alpha: Float32Array;
  readonly steps: Uint32Array;
  readonly drift: Float32Array;
  readonly variance: Float32Array;
  readonly performanceDelta: Float32Array;
}

const GRAFTING_CODE = stateCode("GRAFTING");
const strategyFns = GRAFTING_STRATEGIES.map((s) => GRAFTING[s]);

/**
 * One grafting step for every seed of a layer: GRAFTING seeds advance by their strategy (and
 * count the step); every other seed gets the alpha its state fixes, and its step count resets.
 * Returns the new alpha column (written to `out` when given).
 */
export const advanceAlphas = (columns: GraftingColumns, config: GraftingConfig = DEFAULT_GRAFTING, out?: Float32Array): Float32Array => {
  const n = columns.state.length;
  const next = out ?? new Float32Array(n);
  for (let s = 0; s < n; s++) {
    const code = columns.state[s]!;
    if (code !== GRAFTING_CODE) {
      columns.steps[s] = 0;
      next[s] = effectiveAlpha(code, columns.alpha[s]!);
      continue;
    }
    const step = columns.steps[s]! + 1;
    columns.steps[s] = step;
    const fn = strategyFns[columns.strategy[s]!] ?? linear;
    next[s] = fn(
      {
        step,
        rampSteps: config.rampSteps,
        alpha: step === 1 ? 0 : columns.alpha[s]!,
        drift: columns.drift[s]!,
        variance: columns.variance[s]!,
        performanceDelta: columns.performanceDelta[s]!,
      },
      config,
    );
  }
  return next;
};
