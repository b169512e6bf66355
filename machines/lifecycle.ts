/**
 * The seed lifecycle as data: its states, its edges, and the defaults of its validators.
 * Everything here is plain data so the machine, the property-test model, the state table and
 * the wire protocol all read one source. (The property tests deliberately do NOT import the
 * edge table: they write their own, so a typo here cannot hide.)
 */

export const SEED_STATES = [
  "DORMANT",
  "GERMINATED",
  "TRAINING",
  "GRAFTING",
  "STABILIZATION",
  "EVALUATING",
  "FINE_TUNING",
  "FOSSILIZED",
  "CULLED",
  "CANCELLED",
  "ROLLED_BACK",
] as const;

/** One of the 11 lifecycle states of a seed (SEED_STATES), upper case as on the wire. */
export type SeedState = (typeof SEED_STATES)[number];

/** Row code of a state in the dense state table: its index in SEED_STATES. */
export const stateCode = (state: SeedState): number => SEED_STATE_INDEX[state];
export const stateOf = (code: number): SeedState => {
  const state = SEED_STATES[code];
  if (state === undefined) throw new RangeError(`no lifecycle state has code ${code}`);
  return state;
};
const SEED_STATE_INDEX = Object.fromEntries(SEED_STATES.map((s, i) => [s, i])) as Record<SeedState, number>;

/** The states a seed never leaves (FOSSILIZED, CULLED, CANCELLED, ROLLED_BACK): a request there is answered `terminal_state`. */
export const TERMINAL_STATES: ReadonlySet<SeedState> = new Set(["FOSSILIZED", "CULLED", "CANCELLED", "ROLLED_BACK"]);
export const isTerminal = (state: SeedState): boolean => TERMINAL_STATES.has(state);

/** States in which a seed holds live blueprint work: emergency stop rolls these back. */
export const ACTIVE_STATES: ReadonlySet<SeedState> = new Set(["GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"]);
/** States a stopped layer refuses to enter: anything that grows. */
export const GROWTH_STATES: ReadonlySet<SeedState> = new Set([
  "GERMINATED",
  "TRAINING",
  "GRAFTING",
  "STABILIZATION",
  "EVALUATING",
  "FINE_TUNING",
  "FOSSILIZED",
]);

/** The 16 edges of the lifecycle graph. `force` never adds to these. */
export const EDGES: Readonly<Record<SeedState, readonly SeedState[]>> = {
  DORMANT: ["GERMINATED"],
  GERMINATED: ["TRAINING", "CANCELLED"],
  TRAINING: ["GRAFTING", "CULLED", "CANCELLED"],
  GRAFTING: ["STABILIZATION", "ROLLED_BACK"],
  STABILIZATION: ["EVALUATING", "ROLLED_BACK"],
  EVALUATING: ["FINE_TUNING", "CULLED", "ROLLED_BACK"],
  FINE_TUNING: ["FOSSILIZED", "CULLED", "ROLLED_BACK"],
  FOSSILIZED: [],
  CULLED: [],
  CANCELLED: [],
  ROLLED_BACK: [],
};

/** A state name in any case (`germinated`, as the reference's clients write it) as a SeedState; undefined when it names none. */
export const parseSeedState = (name: string): SeedState | undefined => {
  const upper = name.toUpperCase();
  return (SEED_STATES as readonly string[]).includes(upper) ? (upper as SeedState) : undefined;
};

/** How a grafting seed ramps its alpha from 0 to 1: the reference's five strategies (the data plane implements each). */
export const GRAFTING_STRATEGIES = ["linear", "drift_controlled", "momentum", "adaptive", "stability"] as const;
/** One of GRAFTING_STRATEGIES; `linear` unless a blueprint command names another. */
export type GraftingStrategy = (typeof GRAFTING_STRATEGIES)[number];

/**
 * The strategy names of the reference implementation's message bus, read as the esper strategy
 * that behaves most like each: `immediate` and `gradual` ramp alpha (linear; esper has no jump to
 * full alpha, a graft always ramps from 0), `conditional` advances only while the seed is stable
 * (stability), `safe` holds back when the blend drifts (drift_controlled).
 */
export const GRAFTING_STRATEGY_ALIASES: Readonly<Record<string, GraftingStrategy>> = {
  immediate: "linear",
  gradual: "linear",
  conditional: "stability",
  adaptive: "adaptive",
  safe: "drift_controlled",
};

/** Validator thresholds. Defaults below; a layer may override any of them. */
export interface GuardConfig {
  /** Epochs a seed must spend in a state before leaving it (not needed to enter ROLLED_BACK). */
  readonly minEpochs: Readonly<Record<SeedState, number>>;
  /** TRAINING -> GRAFTING needs reconstruction_loss <= this. */
  readonly maxReconstructionLoss: number;
  /** EVALUATING -> FINE_TUNING needs performance_delta > this and stability_score >= minStability. */
  readonly minPerformanceDelta: number;
  readonly minStability: number;
  /** EVALUATING -> CULLED needs performance_delta < cullBelowDelta, error_rate > cullErrorRate, or errors > cullErrorCount. */
  readonly cullBelowDelta: number;
  readonly cullErrorRate: number;
  readonly cullErrorCount: number;
  /** FINE_TUNING -> FOSSILIZED needs total_improvement >= minImprovement and final_stability >= minFinalStability. */
  readonly minImprovement: number;
  readonly minFinalStability: number;
}

/**
 * The validators' thresholds when a layer sets none: minimum epochs in each state before leaving it,
 * and the metric bounds of each guarded edge (README "Guards" lists them). Override per layer with `guardConfig`.
 */
export const DEFAULT_GUARDS: GuardConfig = {
  minEpochs: {
    DORMANT: 0,
    GERMINATED: 0,
    TRAINING: 100,
    GRAFTING: 50,
    STABILIZATION: 20,
    EVALUATING: 30,
    FINE_TUNING: 50,
    FOSSILIZED: 0,
    CULLED: 0,
    CANCELLED: 0,
    ROLLED_BACK: 0,
  },
  maxReconstructionLoss: 0.01,
  minPerformanceDelta: 0,
  minStability: 0.8,
  cullBelowDelta: -0.05,
  cullErrorRate: 0.1,
  cullErrorCount: 5,
  minImprovement: 0.01,
  minFinalStability: 0.95,
};

/** Thresholds to change from DEFAULT_GUARDS, any subset; `minEpochs` may name some states only. */
export type GuardOverrides = Partial<Omit<GuardConfig, "minEpochs">> & {
  readonly minEpochs?: Partial<Record<SeedState, number>>;
};

/** DEFAULT_GUARDS with `overrides` applied (`minEpochs` merged state by state): a layer's `guards`. */
export const guardConfig = (overrides: GuardOverrides = {}): GuardConfig => ({
  ...DEFAULT_GUARDS,
  ...overrides,
  minEpochs: { ...DEFAULT_GUARDS.minEpochs, ...overrides.minEpochs },
});

/**
 * Codes a command can end with. The wire contract (docs/protocol.md "Command results") lists them;
 * the machines produce the first four kinds, the runtime and bus the rest.
 */
export const RESULT_CODES = [
  "ok",
  "invalid_transition",
  "guard_failed",
  "terminal_state",
  "unknown_layer",
  "unknown_seed",
  "invalid_message",
  "too_large",
  "bad_signature",
  "rate_limited",
  "timeout",
  "emergency_stopped",
  "deposed_leader",
  "internal",
] as const;
/** The `code` of a CommandResult: `ok`, or why the command was not applied (RESULT_CODES; docs/protocol.md says when each is given). */
export type ResultCode = (typeof RESULT_CODES)[number];

/**
 * Most characters of a reason a seed records (history, outcome) and a layer keeps for its stop.
 * A reason is free text from a command; every seed of a layer records it, persisted with each
 * seed and quoted by answers and transition events, so a 64 KiB reason sent to a 100,000-seed
 * layer would otherwise weigh gigabytes. Longer reasons keep their start and say they were cut.
 */
export const MAX_REASON_LENGTH = 256;

export const recordedReason = (reason: string): string =>
  reason.length <= MAX_REASON_LENGTH ? reason : `${reason.slice(0, MAX_REASON_LENGTH - 1)}…`;
