/**
 * Tamiyo's policy: a pure function from its picture of the layers (population.ts) to plans,
 * each with the reason and the measured numbers behind it. It never sends anything: the
 * runtime (tamiyo.ts) turns plans into commands, and the layers' validators have the last
 * word. A plan the policy makes too early (a guard says no) costs one refused command and is
 * made again on a later round.
 *
 * Per layer, in order: health (an emergency stop when the failure rate or critical alerts say
 * so), critical alerts on seeds (roll the seed back), moving seeds on (each gate read from the
 * seed's own measurements, a seed that cannot pass its gate in time is culled), then growth
 * (germinate where the host struggles, inside the strategy's budgets).
 */
import { ACTIVE_STATES, isTerminal, type GuardConfig, type SeedState } from "../../machines/lifecycle.ts";
import type { ResolvedTamiyoConfig, StrategyKnobs } from "./config.ts";
import { STRATEGY_KNOBS } from "./config.ts";
import { costIn, type BlueprintOption, type LayerView, type SeedView } from "./population.ts";

export type PlanKind = "germinate" | "advance" | "cull" | "rollback" | "fossilize" | "emergency_stop";

export type Order =
  | { readonly type: "transition"; readonly target: SeedState; readonly metrics: Readonly<Record<string, number>> }
  | { readonly type: "germinate"; readonly blueprint: string }
  | { readonly type: "stop" }
  /** A population transition (Tamiyo.transitionPopulation): these seeds, one BatchCommand. */
  | { readonly type: "population"; readonly target: SeedState; readonly seeds: readonly number[] };

export interface Plan {
  readonly kind: PlanKind;
  readonly layerId: string;
  readonly seedId: number | null;
  /** What is asked, in words: "TRAINING -> GRAFTING", "germinate with lateral_wide". */
  readonly action: string;
  readonly reason: string;
  /** The measured numbers the decision read. */
  readonly numbers: Readonly<Record<string, number>>;
  readonly order: Order;
}

/** An alert as the policy weighs it. */
export interface AlertView {
  readonly layerId: string;
  readonly seedId: number | null;
  readonly severity: "info" | "warning" | "critical";
  readonly metric: string;
  readonly value: number;
}

/** What Tamiyo learned from the seeds it already decided: per layer and blueprint kind. */
export interface KindOutcome {
  readonly layerId: string;
  readonly blueprint: string;
  /** Held-out loss improvement the seed brought (0 for a seed that failed). */
  readonly improvement: number;
  readonly params: number;
  readonly fossilized: boolean;
}

export interface PolicyInput {
  readonly layers: readonly LayerView[];
  readonly config: ResolvedTamiyoConfig;
  readonly outcomes: readonly KindOutcome[];
  readonly alerts: readonly AlertView[];
}

/** States of a seed that is growing: holds a slot of `maxActiveSeeds`. */
const GROWING: ReadonlySet<SeedState> = new Set(["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"]);
/** States whose blueprint counts against the parameter budget (it is, or will be, in the network). */
const SPENDS_BUDGET: ReadonlySet<SeedState> = new Set([...GROWING, "FOSSILIZED"]);

const dwell = (layer: LayerView, seed: SeedView): number => layer.tick - seed.enteredTick;
const num = (v: number | undefined): number => (v === undefined ? Number.NaN : v);

/** The knobs in force: the strategy's, or for `adaptive` the balanced ones moved by how seeds fared. */
export const knobsInForce = (config: ResolvedTamiyoConfig, outcomes: readonly KindOutcome[]): StrategyKnobs => {
  if (config.strategy !== "adaptive") return config;
  const won = outcomes.filter((o) => o.fossilized).length;
  const lost = outcomes.length - won;
  const lean = won - lost;
  const { conservative: low, aggressive: high } = STRATEGY_KNOBS;
  const clamp = (v: number, a: number, b: number) => Math.min(Math.max(v, Math.min(a, b)), Math.max(a, b));
  return {
    maxActiveSeeds: clamp(config.maxActiveSeeds + lean, low.maxActiveSeeds, high.maxActiveSeeds),
    paramBudget: clamp(config.paramBudget + 0.025 * lean, low.paramBudget, high.paramBudget),
    plateauPatience: clamp(config.plateauPatience - Math.sign(lean), high.plateauPatience, low.plateauPatience),
    germinatePerRound: clamp(config.germinatePerRound + lean, low.germinatePerRound, high.germinatePerRound),
    growWithoutPlateau: lean >= 2,
  };
};

export const decide = (input: PolicyInput): Plan[] => {
  const { layers, config, outcomes, alerts } = input;
  const knobs = knobsInForce(config, outcomes);
  const plans: Plan[] = [];
  for (const layer of layers) {
    if (layer.stopped) continue;
    const stop = health(layer, config);
    if (stop) {
      plans.push(stop);
      continue;
    }
    const blamed = new Set<number>();
    for (const alert of alerts) {
      if (alert.layerId !== layer.profile.layerId || alert.seedId === null || alert.severity !== "critical") continue;
      const seed = layer.seeds[alert.seedId];
      if (!seed || seed.busy || blamed.has(seed.seedId)) continue;
      const plan = dropForAlert(layer, seed, alert);
      if (plan) {
        blamed.add(seed.seedId);
        plans.push(plan);
      }
    }
    for (const seed of layer.seeds) {
      if (seed.busy || blamed.has(seed.seedId) || seed.failures >= config.maxSeedFailures) continue;
      const plan = moveOn(layer, seed, layer.guards, config);
      if (plan) plans.push(plan);
    }
  }
  // A layer stopped this round grows nothing; nor does one whose telemetry just raised a warning (the alert's advice: hold growth until it settles).
  const holding = new Set([
    ...plans.filter((p) => p.kind === "emergency_stop").map((p) => p.layerId),
    ...alerts.filter((a) => a.seedId === null && a.severity !== "info").map((a) => a.layerId),
  ]);
  plans.push(...grow(layers, config, knobs, outcomes, holding));
  return plans;
};

/** Emergency stop when a layer's seeds keep failing, or critical alerts pile up with no seed to blame. */
const health = (layer: LayerView, config: ResolvedTamiyoConfig): Plan | null => {
  const decided = layer.seeds.filter((s) => isTerminal(s.state) && s.state !== "CANCELLED");
  const failed = decided.filter((s) => s.state === "CULLED" || s.state === "ROLLED_BACK").length;
  const rate = decided.length === 0 ? 0 : failed / decided.length;
  const growing = layer.seeds.some((s) => GROWING.has(s.state)) || layer.seeds.some((s) => s.state === "DORMANT");
  const id = layer.profile.layerId;
  if (decided.length >= config.minDecidedForHealth && rate > config.emergencyFailureRate && growing) {
    return {
      kind: "emergency_stop",
      layerId: id,
      seedId: null,
      action: "emergency stop",
      reason: `failure rate ${(rate * 100).toFixed(0)}% (${failed} of ${decided.length} seeds culled or rolled back) is over ${(config.emergencyFailureRate * 100).toFixed(0)}%`,
      numbers: { failure_rate: rate, failed, decided: decided.length, threshold: config.emergencyFailureRate },
      order: { type: "stop" },
    };
  }
  if (layer.criticalAlerts >= config.criticalAlertsToStop) {
    return {
      kind: "emergency_stop",
      layerId: id,
      seedId: null,
      action: "emergency stop",
      reason: `${layer.criticalAlerts} critical alerts on the layer (threshold ${config.criticalAlertsToStop})`,
      numbers: { critical_alerts: layer.criticalAlerts, threshold: config.criticalAlertsToStop },
      order: { type: "stop" },
    };
  }
  return null;
};

const transition = (kind: PlanKind, layer: LayerView, seed: SeedView, target: SeedState, reason: string, numbers: Record<string, number>, metrics: Record<string, number> = {}): Plan => ({
  kind,
  layerId: layer.profile.layerId,
  seedId: seed.seedId,
  action: `${seed.state} -> ${target}`,
  reason,
  numbers,
  order: { type: "transition", target, metrics },
});

/** A critical alert about a seed with live blueprint work: take the blueprint out. */
const dropForAlert = (layer: LayerView, seed: SeedView, alert: AlertView): Plan | null => {
  const numbers = { [alert.metric]: alert.value };
  const reason = `critical alert on ${alert.metric} = ${alert.value.toPrecision(4)}`;
  if (ACTIVE_STATES.has(seed.state)) return transition("rollback", layer, seed, "ROLLED_BACK", reason, numbers);
  if (seed.state === "GERMINATED") return transition("cull", layer, seed, "CANCELLED", reason, numbers);
  return null;
};

/** The next step for one seed, when its gate can hold, or its end when it cannot in time. */
const moveOn = (layer: LayerView, seed: SeedView, guards: GuardConfig, config: ResolvedTamiyoConfig): Plan | null => {
  const m = seed.metrics;
  const waited = dwell(layer, seed);
  const min = guards.minEpochs[seed.state];
  const ripe = waited >= min;
  const overdue = waited >= Math.max(1, min) * config.gatePatience;
  const base = { dwell: waited, min_dwell: min };
  switch (seed.state) {
    case "GERMINATED":
      return ripe ? transition("advance", layer, seed, "TRAINING", "germinated: its blueprint starts training", base) : null;
    case "TRAINING": {
      const loss = num(m["reconstruction_loss"]);
      const numbers = { ...base, reconstruction_loss: loss, threshold: guards.maxReconstructionLoss };
      if (ripe && loss <= guards.maxReconstructionLoss) {
        return transition("advance", layer, seed, "GRAFTING", `reconstruction_loss ${loss.toPrecision(3)} <= ${guards.maxReconstructionLoss}: the blueprint carries its chunk`, numbers, { reconstruction_loss: loss });
      }
      if (overdue) return transition("cull", layer, seed, "CULLED", `reconstruction_loss ${Number.isNaN(loss) ? "never reported" : loss.toPrecision(3)} still above ${guards.maxReconstructionLoss} after ${waited} ticks`, numbers);
      return null;
    }
    case "GRAFTING": {
      const alpha = num(m["alpha"]);
      if (ripe && (alpha >= 0.99 || overdue)) return transition("advance", layer, seed, "STABILIZATION", `alpha ramp done (alpha ${Number.isNaN(alpha) ? "n/a" : alpha.toFixed(2)})`, { ...base, alpha });
      return null;
    }
    case "STABILIZATION":
      return ripe ? transition("advance", layer, seed, "EVALUATING", `stabilized for ${waited} ticks`, base) : null;
    case "EVALUATING": {
      const delta = num(m["performance_delta"]);
      const stability = num(m["stability_score"]);
      const numbers = { ...base, performance_delta: delta, stability_score: stability };
      if (!ripe || Number.isNaN(delta)) return overdue && Number.isNaN(delta) ? transition("rollback", layer, seed, "ROLLED_BACK", `no held-out measurement after ${waited} ticks`, numbers) : null;
      if (delta < guards.cullBelowDelta) {
        return transition("cull", layer, seed, "CULLED", `held-out performance_delta ${delta.toPrecision(3)} < ${guards.cullBelowDelta}: the graft hurts`, numbers, { performance_delta: delta });
      }
      if (delta > guards.minPerformanceDelta && stability >= guards.minStability) {
        return transition("advance", layer, seed, "FINE_TUNING", `held-out loss ${delta.toPrecision(3)} lower with the graft, stability ${stability.toFixed(3)}`, numbers, { performance_delta: delta, stability_score: stability });
      }
      if (overdue) {
        return transition("rollback", layer, seed, "ROLLED_BACK", `after ${waited} ticks the graft does not help enough (performance_delta ${delta.toPrecision(3)}, stability ${Number.isNaN(stability) ? "n/a" : stability.toFixed(3)})`, numbers);
      }
      return null;
    }
    case "FINE_TUNING": {
      const improvement = num(m["total_improvement"]);
      const stability = num(m["final_stability"]);
      const numbers = { ...base, total_improvement: improvement, final_stability: stability, min_improvement: guards.minImprovement };
      if (!ripe || Number.isNaN(improvement)) return null;
      if (improvement >= guards.minImprovement && stability >= guards.minFinalStability) {
        return transition("fossilize", layer, seed, "FOSSILIZED", `held-out improvement ${improvement.toPrecision(3)} >= ${guards.minImprovement}, final stability ${stability.toFixed(3)}`, numbers, { total_improvement: improvement, final_stability: stability });
      }
      if (improvement < 0) return transition("cull", layer, seed, "CULLED", `fine-tuning made it hurt: held-out improvement ${improvement.toPrecision(3)}`, numbers);
      // A seed that helps enough but whose contribution still moves (it is learning) gets a second patience to settle: culling it would throw away what it gives.
      const unsettled = waited >= Math.max(1, min) * config.gatePatience * 2;
      if ((overdue && improvement < guards.minImprovement) || unsettled) {
        return transition("cull", layer, seed, "CULLED", `after ${waited} ticks: improvement ${improvement.toPrecision(3)} (needs ${guards.minImprovement}), final stability ${Number.isNaN(stability) ? "n/a" : stability.toFixed(3)} (needs ${guards.minFinalStability})`, numbers);
      }
      return null;
    }
    default:
      return null;
  }
};

/** Measured worth of a kind in a layer: mean held-out improvement per thousand parameters, or null when never tried there. */
const kindWorth = (layerId: string, kind: BlueprintOption, outcomes: readonly KindOutcome[]): number | null => {
  const mine = outcomes.filter((o) => o.layerId === layerId && o.blueprint === kind.id);
  if (mine.length === 0) return null;
  return mine.reduce((sum, o) => sum + (1000 * o.improvement) / Math.max(1, o.params), 0) / mine.length;
};

/**
 * The kind to germinate: the one that measured best, as long as something measured worth
 * anything; otherwise the first untried kind in the profile's order; never one that measured
 * worthless while another is left.
 */
export const chooseKind = (layerId: string, kinds: readonly BlueprintOption[], outcomes: readonly KindOutcome[]): BlueprintOption | undefined => {
  const rated = kinds.map((k) => ({ k, w: kindWorth(layerId, k, outcomes) }));
  const best = rated.filter((r) => r.w !== null && r.w > 0).sort((a, b) => b.w! - a.w!)[0];
  if (best) return best.k;
  return rated.find((r) => r.w === null)?.k ?? rated.sort((a, b) => b.w! - a.w!)[0]?.k;
};

/** Whether the host stopped improving: the best of the last `patience` validation losses is not `improvement` better than the best before. */
export const onPlateau = (valLoss: readonly number[], patience: number, improvement: number): { plateau: boolean; recent: number; before: number } => {
  if (valLoss.length <= patience) return { plateau: false, recent: Number.NaN, before: Number.NaN };
  const recent = Math.min(...valLoss.slice(-patience));
  const before = Math.min(...valLoss.slice(0, -patience));
  return { plateau: recent > before * (1 - improvement), recent, before };
};

interface Candidate {
  readonly layer: LayerView;
  readonly seed: SeedView;
  readonly score: number;
  readonly why: string;
  readonly numbers: Record<string, number>;
}

/**
 * Where the host struggles in a layer: dead chunks first (score 2 + sparsity), then the others
 * by how much the loss leans on them (gradient norm over the layer's mean) plus the share of
 * samples on which their units are idle (sparsity): a narrow relu layer whose units are off half
 * the time outranks a linear layer's chunk with the same gradient.
 */
const candidates = (layer: LayerView, config: ResolvedTamiyoConfig): Candidate[] => {
  const grads = layer.seeds.map((s) => s.metrics["gradient_norm"]).filter((g): g is number => g !== undefined);
  const meanGrad = grads.length ? grads.reduce((a, b) => a + b, 0) / grads.length : Number.NaN;
  return layer.seeds
    .filter((s) => s.state === "DORMANT" && !s.busy && s.failures < config.maxSeedFailures)
    .map((seed): Candidate => {
      const sparsity = num(seed.metrics["sparsity"]);
      const grad = num(seed.metrics["gradient_norm"]);
      const relative = grad / meanGrad;
      if (sparsity >= config.deadSparsity) {
        return { layer, seed, score: 2 + sparsity, why: `dead units: the chunk is zero on ${(sparsity * 100).toFixed(0)}% of samples`, numbers: { sparsity, gradient_norm: grad } };
      }
      // Units idle on many samples (a relu chunk's zeros) are capacity the layer has lost: they add to the chunk's claim.
      const idle = Number.isFinite(sparsity) ? sparsity : 0;
      const score = (Number.isFinite(relative) ? relative : 0) + idle;
      const leans = `the loss leans on this chunk (gradient norm ${Number.isFinite(relative) ? relative.toFixed(2) : "n/a"}x the layer's mean)`;
      const why = idle >= 0.005 ? `${leans} and its units are idle on ${(idle * 100).toFixed(0)}% of samples` : leans;
      return { layer, seed, score, why, numbers: { sparsity, gradient_norm: grad, relative_gradient: relative } };
    })
    .sort((a, b) => b.score - a.score || a.seed.seedId - b.seed.seedId);
};

/** Germinations within the budgets; `stopping`: layers that grow nothing this round. */
const grow = (layers: readonly LayerView[], config: ResolvedTamiyoConfig, knobs: StrategyKnobs, outcomes: readonly KindOutcome[], stopping: ReadonlySet<string>): Plan[] => {
  const hostParams = layers.reduce((sum, l) => sum + l.profile.hostParams, 0);
  let active = 0;
  let spent = 0;
  for (const layer of layers) {
    for (const seed of layer.seeds) {
      if (GROWING.has(seed.state) || seed.busy) active++;
      if (SPENDS_BUDGET.has(seed.state)) spent += costIn(layer.profile, seed.blueprint);
    }
  }
  const budget = knobs.paramBudget * hostParams;
  const plans: Plan[] = [];
  const pool: Candidate[] = [];
  for (const layer of layers) {
    if (layer.stopped || stopping.has(layer.profile.layerId)) continue;
    const plateau = onPlateau(layer.valLoss, knobs.plateauPatience, config.plateauImprovement);
    const found = candidates(layer, config);
    const struggling = knobs.growWithoutPlateau ? found.filter((c) => c.score > 1) : [];
    const chosen = plateau.plateau ? found : struggling;
    for (const c of chosen) {
      const why = plateau.plateau ? `validation loss on a plateau (best of last ${knobs.plateauPatience}: ${plateau.recent.toPrecision(4)} vs ${plateau.before.toPrecision(4)} before); ${c.why}` : c.why;
      pool.push({ ...c, why, numbers: { ...c.numbers, ...(plateau.plateau ? { val_loss_recent: plateau.recent, val_loss_before: plateau.before } : {}) } });
    }
  }
  pool.sort((a, b) => b.score - a.score || a.layer.profile.layerId.localeCompare(b.layer.profile.layerId) || a.seed.seedId - b.seed.seedId);
  for (const c of pool) {
    if (plans.length >= knobs.germinatePerRound || active >= knobs.maxActiveSeeds) break;
    const layerId = c.layer.profile.layerId;
    const affordable = c.layer.profile.blueprints.filter((k) => spent + k.params <= budget);
    if (affordable.length === 0) continue;
    const kind = chooseKind(layerId, affordable, outcomes)!;
    spent += kind.params;
    active++;
    plans.push({
      kind: "germinate",
      layerId,
      seedId: c.seed.seedId,
      action: `germinate with ${kind.id}`,
      reason: c.why,
      numbers: { ...c.numbers, blueprint_params: kind.params, params_spent: spent, params_budget: budget, active_seeds: active },
      order: { type: "germinate", blueprint: kind.id },
    });
  }
  return plans;
};
