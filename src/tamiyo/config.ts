/**
 * Tamiyo's options, with every default written once. Names follow the reference's TamiyoConfig
 * where one exists (optimization_strategy -> strategy, emergency_failure_rate ->
 * emergencyFailureRate, max_batch_size -> maxBatchSize); a strategy is a preset of the knobs
 * that decide how boldly the network grows, and any knob given explicitly overrides it.
 */

export const STRATEGIES = ["conservative", "balanced", "aggressive", "adaptive"] as const;
/** How boldly Tamiyo grows the network: a preset of StrategyKnobs (docs/tamiyo.md "Strategies"); `adaptive` moves between them. */
export type Strategy = (typeof STRATEGIES)[number];

/** What a strategy sets. */
export interface StrategyKnobs {
  /** Most seeds growing at once across all layers (GERMINATED ... FINE_TUNING). */
  readonly maxActiveSeeds: number;
  /** Parameters growth may add, as a fraction of the host's (blueprints of live and fossilized seeds). */
  readonly paramBudget: number;
  /**
   * Validation measurements without a relative improvement of `plateauImprovement` before the
   * host counts as stuck on a plateau (a reason to grow).
   */
  readonly plateauPatience: number;
  /** Seeds germinated in one decision round at most. */
  readonly germinatePerRound: number;
  /**
   * Germinate on struggle signals alone (dead units, a chunk the loss leans on), without waiting
   * for a plateau. Only `aggressive` does.
   */
  readonly growWithoutPlateau: boolean;
}

export const STRATEGY_KNOBS: Readonly<Record<Exclude<Strategy, "adaptive">, StrategyKnobs>> = {
  conservative: { maxActiveSeeds: 1, paramBudget: 0.1, plateauPatience: 4, germinatePerRound: 1, growWithoutPlateau: false },
  balanced: { maxActiveSeeds: 2, paramBudget: 0.2, plateauPatience: 2, germinatePerRound: 2, growWithoutPlateau: false },
  aggressive: { maxActiveSeeds: 4, paramBudget: 0.25, plateauPatience: 1, germinatePerRound: 4, growWithoutPlateau: true },
};

/**
 * Tamiyo's knobs, all optional: `strategy` presets five of them, any given explicitly overrides the preset, and the
 * rest default to TAMIYO_DEFAULTS. Out-of-range values are refused when Tamiyo starts (a RangeError naming the option).
 */
export interface TamiyoConfig {
  /** Default "balanced". `adaptive` starts balanced and moves toward aggressive while seeds fossilize, toward conservative while they fail. */
  readonly strategy?: Strategy;
  /** Most seeds growing at once across all layers. Default: the strategy's (balanced: 2). */
  readonly maxActiveSeeds?: number;
  /** Parameters growth may add, as a fraction of the host's. Default: the strategy's (balanced: 0.2). */
  readonly paramBudget?: number;
  /** Validation losses without progress (`plateauImprovement`) before a plateau; at least 1. Default: the strategy's (balanced: 2). */
  readonly plateauPatience?: number;
  /** Seeds germinated in one round at most. Default: the strategy's (balanced: 2). */
  readonly germinatePerRound?: number;
  /** Germinate on struggle signals without waiting for a plateau. Default: the strategy's (only `aggressive`: true). */
  readonly growWithoutPlateau?: boolean;
  /** Relative improvement of the best validation loss that counts as progress. Default 0.01 (1%). */
  readonly plateauImprovement?: number;
  /** A chunk whose output is exactly zero on at least this fraction of samples holds dead units. Default 0.95. */
  readonly deadSparsity?: number;
  /**
   * How long past a state's minimum dwell a seed may wait for its gate (reconstruction loss,
   * positive evaluation, fossilization) before Tamiyo gives up on it, as a multiple of that
   * dwell. Default 2.
   */
  readonly gatePatience?: number;
  /** A layer whose failure rate (culled and rolled back over seeds decided) passes this is emergency-stopped. Default 0.5, as the reference. */
  readonly emergencyFailureRate?: number;
  /** Seeds decided in a layer before its failure rate is judged. Default 3. */
  readonly minDecidedForHealth?: number;
  /** Critical alerts on a layer, without a seed to blame, that stop it. Default 3. */
  readonly criticalAlertsToStop?: number;
  /**
   * Commands about one seed a layer may refuse for reasons other than a guard (invalid,
   * unknown, stopped...) before Tamiyo leaves the seed alone. Default 3.
   */
  readonly maxSeedFailures?: number;
  /** Most commands in one BatchCommand of a population transition. Default 100, as the reference. */
  readonly maxBatchSize?: number;
  /** `timeout_ms` of the commands Tamiyo sends. Default 5000. */
  readonly commandTimeoutMs?: number;
  /** Grafting strategy of germinated seeds. Default "linear". */
  readonly graftingStrategy?: "linear" | "drift_controlled" | "momentum" | "adaptive" | "stability";
}

export type ResolvedTamiyoConfig = Required<TamiyoConfig>;

/** The default of every TamiyoConfig option that its strategy does not set (docs/tamiyo.md cites them). */
export const TAMIYO_DEFAULTS: Omit<ResolvedTamiyoConfig, keyof StrategyKnobs> = {
  strategy: "balanced",
  plateauImprovement: 0.01,
  deadSparsity: 0.95,
  gatePatience: 2,
  emergencyFailureRate: 0.5,
  minDecidedForHealth: 3,
  criticalAlertsToStop: 3,
  maxSeedFailures: 3,
  maxBatchSize: 100,
  commandTimeoutMs: 5_000,
  graftingStrategy: "linear",
};

/** A TamiyoConfig that cannot work (a value out of its range, an unknown strategy); its message names the field and what it takes. */
export class TamiyoConfigError extends RangeError {
  readonly _tag = "TamiyoConfigError";
}

export const knobsOf = (strategy: Strategy): StrategyKnobs => STRATEGY_KNOBS[strategy === "adaptive" ? "balanced" : strategy];

export const resolveTamiyoConfig = (config: TamiyoConfig = {}): ResolvedTamiyoConfig => {
  const strategy = config.strategy ?? TAMIYO_DEFAULTS.strategy;
  if (!STRATEGIES.includes(strategy)) throw new TamiyoConfigError(`strategy must be one of ${STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined)) as TamiyoConfig;
  const resolved: ResolvedTamiyoConfig = { ...TAMIYO_DEFAULTS, ...knobsOf(strategy), ...given, strategy };
  const atLeast = (name: keyof ResolvedTamiyoConfig, min: number) => {
    const v = resolved[name] as number;
    if (!(typeof v === "number" && v >= min && Number.isFinite(v))) throw new TamiyoConfigError(`tamiyo option ${name} must be a number >= ${min}, got ${v}`);
  };
  atLeast("maxActiveSeeds", 0);
  atLeast("paramBudget", 0);
  atLeast("plateauPatience", 1);
  atLeast("germinatePerRound", 0);
  atLeast("plateauImprovement", 0);
  atLeast("gatePatience", 1);
  atLeast("minDecidedForHealth", 1);
  atLeast("criticalAlertsToStop", 1);
  atLeast("maxSeedFailures", 1);
  atLeast("maxBatchSize", 1);
  atLeast("commandTimeoutMs", 1);
  if (!(resolved.deadSparsity > 0 && resolved.deadSparsity <= 1)) throw new TamiyoConfigError(`tamiyo option deadSparsity must be in (0, 1], got ${resolved.deadSparsity}`);
  if (!(resolved.emergencyFailureRate > 0 && resolved.emergencyFailureRate <= 1)) {
    throw new TamiyoConfigError(`tamiyo option emergencyFailureRate must be in (0, 1], got ${resolved.emergencyFailureRate}`);
  }
  return resolved;
};
