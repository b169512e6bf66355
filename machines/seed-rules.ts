/**
 * The transition validators of the seed lifecycle, as pure functions of (from, to, facts).
 * The seed machine's guards call `checkTransition`; nothing else decides whether a seed moves.
 */
import { EDGES, isTerminal, type GuardConfig, type ResultCode, type SeedState } from "./lifecycle.ts";

/** Named measurements of a seed (`reconstruction_loss`, `performance_delta`, ...) that its validators read. */
export type Metrics = Readonly<Record<string, number>>;

/** The metrics the validators below read: what a layer takes from telemetry into its seeds. */
export const GUARD_METRICS = [
  "reconstruction_loss",
  "performance_delta",
  "stability_score",
  "error_rate",
  "error_count",
  "total_improvement",
  "final_stability",
] as const;

/** What the validators look at: the seed's own bookkeeping plus the metrics it knows. */
export interface SeedFacts {
  readonly epochsInState: number;
  readonly errorCount: number;
  readonly metrics: Metrics;
}

export type Verdict =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly code: Extract<ResultCode, "invalid_transition" | "guard_failed" | "terminal_state">;
      readonly error: string;
      /** The validator that said no (guard_failed only). */
      readonly guard?: string;
      /** The values it judged, so an operator sees why without digging. */
      readonly values?: Readonly<Record<string, number | null>>;
    };

const OK: Verdict = { ok: true };

const fail = (guard: string, error: string, values: Record<string, number | null>): Verdict => ({
  ok: false,
  code: "guard_failed",
  guard,
  error,
  values,
});

/** True when the graph has the edge `from -> to`. `force` never changes this. */
export const hasEdge = (from: SeedState, to: SeedState): boolean => EDGES[from].includes(to);

/** Structure only: is there an edge at all? */
export const checkEdge = (from: SeedState, to: SeedState): Verdict => {
  if (isTerminal(from)) {
    return { ok: false, code: "terminal_state", error: `seed is ${from}, a terminal state; it accepts no transition` };
  }
  if (!hasEdge(from, to)) {
    return {
      ok: false,
      code: "invalid_transition",
      error: `${from} -> ${to} is not an edge of the lifecycle; from ${from} a seed may go to ${EDGES[from].join(", ")}`,
    };
  }
  return OK;
};

const metric = (metrics: Metrics, name: string): number | null => {
  const v = metrics[name];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
};

/** The validators of one edge (assumes the edge exists). */
export const checkGuards = (from: SeedState, to: SeedState, facts: SeedFacts, config: GuardConfig): Verdict => {
  // ROLLED_BACK is the emergency exit: no dwell time is required to take it.
  if (to !== "ROLLED_BACK") {
    const required = config.minEpochs[from];
    if (facts.epochsInState < required) {
      return fail(
        "min_epochs",
        `${from} -> ${to}: ${facts.epochsInState} epochs in ${from}, needs at least ${required}`,
        { epochs_in_state: facts.epochsInState, required },
      );
    }
  }
  const m = facts.metrics;
  if (from === "TRAINING" && to === "GRAFTING") {
    const loss = metric(m, "reconstruction_loss");
    if (loss === null || loss > config.maxReconstructionLoss) {
      return fail(
        "reconstruction_loss",
        `TRAINING -> GRAFTING: reconstruction_loss ${loss ?? "not reported"}, needs <= ${config.maxReconstructionLoss}`,
        { reconstruction_loss: loss, threshold: config.maxReconstructionLoss },
      );
    }
  }
  if (from === "EVALUATING" && to === "FINE_TUNING") {
    const delta = metric(m, "performance_delta");
    const stability = metric(m, "stability_score");
    if (delta === null || delta <= config.minPerformanceDelta || stability === null || stability < config.minStability) {
      return fail(
        "positive_evaluation",
        `EVALUATING -> FINE_TUNING: performance_delta ${delta ?? "not reported"} (needs > ${config.minPerformanceDelta}), ` +
          `stability_score ${stability ?? "not reported"} (needs >= ${config.minStability})`,
        { performance_delta: delta, stability_score: stability },
      );
    }
  }
  if (from === "EVALUATING" && to === "CULLED") {
    const delta = metric(m, "performance_delta");
    const errorRate = metric(m, "error_rate");
    const errors = Math.max(facts.errorCount, metric(m, "error_count") ?? 0);
    const cull =
      (delta !== null && delta < config.cullBelowDelta) ||
      (errorRate !== null && errorRate > config.cullErrorRate) ||
      errors > config.cullErrorCount;
    if (!cull) {
      return fail(
        "cull_condition",
        `EVALUATING -> CULLED: no culling condition holds (performance_delta ${delta ?? "not reported"} needs < ${config.cullBelowDelta}, ` +
          `error_rate ${errorRate ?? "not reported"} needs > ${config.cullErrorRate}, errors ${errors} needs > ${config.cullErrorCount})`,
        { performance_delta: delta, error_rate: errorRate, error_count: errors },
      );
    }
  }
  if (from === "FINE_TUNING" && to === "FOSSILIZED") {
    const improvement = metric(m, "total_improvement");
    const stability = metric(m, "final_stability");
    if (
      improvement === null ||
      improvement < config.minImprovement ||
      stability === null ||
      stability < config.minFinalStability
    ) {
      return fail(
        "fossilization",
        `FINE_TUNING -> FOSSILIZED: total_improvement ${improvement ?? "not reported"} (needs >= ${config.minImprovement}), ` +
          `final_stability ${stability ?? "not reported"} (needs >= ${config.minFinalStability})`,
        { total_improvement: improvement, final_stability: stability },
      );
    }
  }
  return OK;
};

/** The whole decision: structure first, then (unless forced) the validators. */
export const checkTransition = (
  from: SeedState,
  to: SeedState,
  facts: SeedFacts,
  config: GuardConfig,
  force: boolean,
): Verdict => {
  const edge = checkEdge(from, to);
  if (!edge.ok || force) return edge;
  return checkGuards(from, to, facts, config);
};
