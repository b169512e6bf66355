/**
 * Tamiyo's policy on scripted telemetry: pure, so each case is a picture of the layers and the
 * plans it yields.
 */
import { describe, expect, it } from "vitest";
import { resolveTamiyoConfig, type TamiyoConfig } from "../../src/tamiyo/config.ts";
import { chooseKind, decide, knobsInForce, onPlateau, type AlertView, type KindOutcome, type Plan } from "../../src/tamiyo/policy.ts";
import { batchesOf, Population, selectSeeds, type LayerProfile } from "../../src/tamiyo/population.ts";
import type { SeedState } from "../../machines/lifecycle.ts";

const PROFILE: LayerProfile = {
  layerId: "hidden",
  numSeeds: 4,
  hostParams: 10_000,
  blueprints: [
    { id: "lateral_wide", params: 610 },
    { id: "lateral_mlp", params: 306 },
  ],
};

/** One report: per-seed metrics as rows, plus a performance summary. */
const report = (layerId: string, bySeed: Record<number, Record<string, number>>, summary: Record<string, number> = {}) => {
  const seeds = Object.keys(bySeed).map(Number);
  const columns = [...new Set(seeds.flatMap((s) => Object.keys(bySeed[s]!)))];
  return { layerId, performanceSummary: summary, seeds, columns, values: columns.map((c) => seeds.map((s) => bySeed[s]![c] ?? Number.NaN)) };
};

const picture = (profiles: readonly LayerProfile[] = [PROFILE]) => new Population(profiles);

/** Validation losses that stopped improving: a plateau for any patience up to 3. */
const plateau = (p: Population, layerId = "hidden") => {
  for (const loss of [1.0, 0.6, 0.5, 0.5, 0.5, 0.5]) p.observe(report(layerId, {}, { val_loss: loss }));
};

const run = (p: Population, config: TamiyoConfig = {}, outcomes: KindOutcome[] = [], alerts: AlertView[] = []): Plan[] =>
  decide({ layers: p.all(), config: resolveTamiyoConfig(config), outcomes, alerts });

const put = (p: Population, seedId: number, state: SeedState, tick: number, blueprint: string | null = "lateral_wide", layerId = "hidden") => {
  const layer = p.layer(layerId)!;
  const saved = layer.tick;
  layer.tick = tick;
  p.transition(layerId, seedId, state);
  if (blueprint) p.blueprint(layerId, seedId, blueprint);
  layer.tick = saved;
};

const tick = (p: Population, epoch: number, layerId = "hidden") => p.observe(report(layerId, {}, { epoch }));

describe("growth: where and how much", () => {
  it("germinates nothing while the host still improves and no chunk struggles (balanced)", () => {
    const p = picture();
    for (const loss of [1.0, 0.8, 0.6, 0.5]) p.observe(report("hidden", {}, { val_loss: loss }));
    p.observe(report("hidden", { 0: { sparsity: 0.1, gradient_norm: 1 }, 1: { sparsity: 0.2, gradient_norm: 1.2 } }));
    expect(run(p).filter((x) => x.kind === "germinate")).toEqual([]);
  });

  it("on a plateau germinates the chunks the loss leans on most, with the numbers that chose them", () => {
    const p = picture();
    plateau(p);
    p.observe(report("hidden", { 0: { sparsity: 0.1, gradient_norm: 1 }, 1: { sparsity: 0.1, gradient_norm: 3 }, 2: { sparsity: 0.1, gradient_norm: 2 }, 3: { sparsity: 0.1, gradient_norm: 0.5 } }));
    const plans = run(p, { strategy: "balanced" });
    expect(plans.map((x) => [x.kind, x.seedId, x.order])).toEqual([
      ["germinate", 1, { type: "germinate", blueprint: "lateral_wide" }],
      ["germinate", 2, { type: "germinate", blueprint: "lateral_wide" }],
    ]);
    expect(plans[0]!.reason).toMatch(/plateau.*gradient norm 1\.85x/);
    expect(plans[0]!.numbers).toMatchObject({ gradient_norm: 3, blueprint_params: 610, val_loss_recent: 0.5 });
  });

  it("dead units come first, and aggressive grows on them without waiting for a plateau", () => {
    const p = picture();
    p.observe(report("hidden", { 0: { sparsity: 0.1, gradient_norm: 5 }, 3: { sparsity: 1, gradient_norm: 0 } }));
    expect(run(p, { strategy: "balanced" })).toEqual([]);
    const plans = run(p, { strategy: "aggressive" });
    expect(plans[0]).toMatchObject({ kind: "germinate", seedId: 3 });
    expect(plans[0]!.reason).toMatch(/dead units/);
  });

  it("conservative grows one seed at a time and waits longer for a plateau", () => {
    const p = picture();
    for (const loss of [1.0, 0.5, 0.5, 0.5, 0.5]) p.observe(report("hidden", {}, { val_loss: loss }));
    expect(run(p, { strategy: "conservative" })).toEqual([]); // patience 4: not yet
    p.observe(report("hidden", {}, { val_loss: 0.5 }));
    const plans = run(p, { strategy: "conservative" });
    expect(plans.filter((x) => x.kind === "germinate")).toHaveLength(1);
  });

  it("keeps within maxActiveSeeds and the parameter budget", () => {
    const p = picture();
    plateau(p);
    put(p, 0, "TRAINING", 0);
    // One growing seed already: balanced allows two at once.
    expect(run(p, { strategy: "balanced" }).filter((x) => x.kind === "germinate")).toHaveLength(1);
    // A budget of 1,000 params with 610 spent leaves room for the 306-param kind only.
    const plans = run(p, { strategy: "aggressive", paramBudget: 0.1 });
    expect(plans.filter((x) => x.kind === "germinate").map((x) => x.order)).toEqual([{ type: "germinate", blueprint: "lateral_mlp" }]);
    expect(run(p, { strategy: "aggressive", paramBudget: 0.05 }).filter((x) => x.kind === "germinate")).toEqual([]);
  });

  it("picks the blueprint kind that measured better once both were tried", () => {
    const p = picture();
    plateau(p);
    const outcomes: KindOutcome[] = [
      { layerId: "hidden", blueprint: "lateral_wide", improvement: 0.02, params: 610, fossilized: true },
      { layerId: "hidden", blueprint: "lateral_mlp", improvement: 0.03, params: 306, fossilized: true },
    ];
    expect(run(p, { strategy: "conservative", plateauPatience: 2 }, outcomes)[0]!.order).toEqual({ type: "germinate", blueprint: "lateral_mlp" });
  });

  it("keeps germinating the kind that measured well instead of trying every other, and avoids one that measured worthless", () => {
    const kinds = PROFILE.blueprints;
    const wide = (improvement: number): KindOutcome => ({ layerId: "hidden", blueprint: "lateral_wide", improvement, params: 610, fossilized: improvement > 0 });
    expect(chooseKind("hidden", kinds, [])!.id).toBe("lateral_wide"); // nothing measured: the profile's order
    expect(chooseKind("hidden", kinds, [wide(0.03)])!.id).toBe("lateral_wide"); // it worked: no detour through lateral_mlp
    expect(chooseKind("hidden", kinds, [wide(0)])!.id).toBe("lateral_mlp"); // it did nothing: try the next
    expect(chooseKind("other", kinds, [wide(0)])!.id).toBe("lateral_wide"); // what a kind did in one layer says nothing of another
  });

  it("a relu chunk whose units are idle outranks a linear layer's chunk with the same gradient", () => {
    const p = picture([PROFILE, { ...PROFILE, layerId: "proj" }]);
    plateau(p, "hidden");
    plateau(p, "proj");
    p.observe(report("hidden", { 0: { sparsity: 0.6, gradient_norm: 1 }, 1: { sparsity: 0.5, gradient_norm: 1 } }));
    p.observe(report("proj", { 0: { sparsity: 0, gradient_norm: 1 }, 1: { sparsity: 0, gradient_norm: 1 } }));
    const plans = run(p, { strategy: "balanced" });
    expect(plans.map((x) => `${x.layerId}/${x.seedId}`)).toEqual(["hidden/0", "hidden/1"]);
    expect(plans[0]!.reason).toMatch(/idle on 60% of samples/);
  });

  it("adaptive leans aggressive while seeds fossilize and conservative while they fail", () => {
    const config = resolveTamiyoConfig({ strategy: "adaptive" });
    const won = (n: number): KindOutcome[] => Array.from({ length: n }, () => ({ layerId: "hidden", blueprint: "x", improvement: 0.1, params: 1, fossilized: true }));
    const lost = (n: number): KindOutcome[] => Array.from({ length: n }, () => ({ layerId: "hidden", blueprint: "x", improvement: 0, params: 1, fossilized: false }));
    expect(knobsInForce(config, [])).toMatchObject({ maxActiveSeeds: 2, growWithoutPlateau: false });
    expect(knobsInForce(config, won(3))).toMatchObject({ maxActiveSeeds: 4, growWithoutPlateau: true });
    expect(knobsInForce(config, lost(3))).toMatchObject({ maxActiveSeeds: 1, paramBudget: 0.125, growWithoutPlateau: false });
  });

  it("plateau: the best of the last `patience` losses is not 1% better than the best before", () => {
    expect(onPlateau([1, 0.9, 0.8], 2, 0.01).plateau).toBe(false);
    expect(onPlateau([1, 0.5, 0.499, 0.5], 2, 0.01).plateau).toBe(true);
    expect(onPlateau([0.5], 2, 0.01).plateau).toBe(false);
  });
});

describe("moving seeds on: each gate read from the seed's measurements", () => {
  it("GERMINATED -> TRAINING at once", () => {
    const p = picture();
    put(p, 0, "GERMINATED", 0);
    expect(run(p)[0]).toMatchObject({ kind: "advance", seedId: 0, action: "GERMINATED -> TRAINING" });
  });

  it("TRAINING -> GRAFTING once the dwell is served and reconstruction_loss passed; culled when it never does", () => {
    const p = picture();
    put(p, 0, "TRAINING", 0);
    p.observe(report("hidden", { 0: { reconstruction_loss: 0.004 } }));
    tick(p, 50);
    expect(run(p)).toEqual([]); // 50 of 100 ticks
    tick(p, 100);
    const [plan] = run(p);
    expect(plan).toMatchObject({ action: "TRAINING -> GRAFTING", order: { type: "transition", target: "GRAFTING", metrics: { reconstruction_loss: 0.004 } } });
    const q = picture();
    put(q, 1, "TRAINING", 0);
    q.observe(report("hidden", { 1: { reconstruction_loss: 0.3 } }));
    tick(q, 150);
    expect(run(q)).toEqual([]);
    tick(q, 200);
    expect(run(q)[0]).toMatchObject({ kind: "cull", action: "TRAINING -> CULLED" });
    expect(run(q)[0]!.reason).toMatch(/reconstruction_loss 0\.300 still above 0\.01 after 200 ticks/);
  });

  it("EVALUATING: fine-tunes what helps, culls what hurts, rolls back what does not help in time", () => {
    const p = picture();
    for (const s of [0, 1, 2]) put(p, s, "EVALUATING", 0);
    tick(p, 30);
    p.observe(report("hidden", { 0: { performance_delta: 0.04, stability_score: 0.9 }, 1: { performance_delta: -0.2, stability_score: 0.9 }, 2: { performance_delta: -0.001, stability_score: 0.9 } }));
    const plans = run(p);
    expect(plans.map((x) => [x.seedId, x.action])).toEqual([
      [0, "EVALUATING -> FINE_TUNING"],
      [1, "EVALUATING -> CULLED"],
    ]);
    tick(p, 60);
    expect(run(p).find((x) => x.seedId === 2)).toMatchObject({ kind: "rollback", action: "EVALUATING -> ROLLED_BACK" });
  });

  it("FINE_TUNING -> FOSSILIZED on a steady held-out improvement", () => {
    const p = picture();
    put(p, 0, "FINE_TUNING", 0);
    tick(p, 50);
    p.observe(report("hidden", { 0: { total_improvement: 0.03, final_stability: 0.99 } }));
    expect(run(p)[0]).toMatchObject({ kind: "fossilize", action: "FINE_TUNING -> FOSSILIZED", numbers: { total_improvement: 0.03, final_stability: 0.99 } });
  });

  it("FINE_TUNING past its patience: culls a seed that does not help enough, leaves one that helps but still moves to settle", () => {
    const p = picture();
    put(p, 0, "FINE_TUNING", 0);
    put(p, 1, "FINE_TUNING", 0);
    tick(p, 100);
    p.observe(report("hidden", { 0: { total_improvement: 0.005, final_stability: 0.99 }, 1: { total_improvement: 0.03, final_stability: 0.9 } }));
    expect(run(p).map((x) => [x.seedId, x.action])).toEqual([[0, "FINE_TUNING -> CULLED"]]);
    // Past a second patience a seed that never settles is culled too.
    tick(p, 200);
    expect(run(p).map((x) => [x.seedId, x.action])).toEqual([
      [0, "FINE_TUNING -> CULLED"],
      [1, "FINE_TUNING -> CULLED"],
    ]);
  });

  it("a transition clears the old state's measurements, so a stale number never moves a seed on", () => {
    const p = picture();
    put(p, 0, "EVALUATING", 0);
    p.observe(report("hidden", { 0: { performance_delta: 0.04, stability_score: 0.9 } }));
    put(p, 0, "FINE_TUNING", 0);
    expect(p.seed("hidden", 0)!.metrics).toEqual({ stability_score: 0.9 });
  });

  it("leaves a seed alone once its layer refused maxSeedFailures commands about it (default 3)", () => {
    const p = picture();
    put(p, 0, "GERMINATED", 0);
    p.seed("hidden", 0)!.failures = 3;
    expect(run(p)).toEqual([]);
    expect(run(p, { maxSeedFailures: 4 })).toHaveLength(1);
  });

  it("leaves a seed alone while a command about it is outstanding", () => {
    const p = picture();
    put(p, 0, "GERMINATED", 0);
    p.seed("hidden", 0)!.busy = true;
    expect(run(p)).toEqual([]);
  });
});

describe("health and emergencies", () => {
  it("stops a layer whose failure rate passes emergencyFailureRate (default 0.5)", () => {
    const p = picture();
    put(p, 0, "CULLED", 0);
    put(p, 1, "ROLLED_BACK", 0);
    put(p, 2, "FOSSILIZED", 0);
    const [plan] = run(p);
    expect(plan).toMatchObject({ kind: "emergency_stop", layerId: "hidden", seedId: null, order: { type: "stop" } });
    expect(plan!.numbers).toMatchObject({ failure_rate: 2 / 3, decided: 3 });
    // At 1 of 3 it keeps going.
    const q = picture();
    put(q, 0, "CULLED", 0);
    put(q, 1, "FOSSILIZED", 0);
    put(q, 2, "FOSSILIZED", 0);
    expect(run(q).some((x) => x.kind === "emergency_stop")).toBe(false);
    // And a stopped layer is left alone.
    p.stopped("hidden", true);
    expect(run(p)).toEqual([]);
  });

  it("grows nothing in a layer it stops in the same round", () => {
    const p = picture();
    plateau(p);
    put(p, 0, "CULLED", 0);
    put(p, 1, "CULLED", 0);
    put(p, 2, "FOSSILIZED", 0);
    const plans = run(p, { strategy: "aggressive" });
    expect(plans.map((x) => x.kind)).toEqual(["emergency_stop"]);
  });

  it("holds growth in a layer whose telemetry raised a warning this round, as the alert advises", () => {
    const p = picture();
    plateau(p);
    const warning: AlertView = { layerId: "hidden", seedId: null, severity: "warning", metric: "activation_norm", value: 9 };
    expect(run(p, { strategy: "balanced" }, [], [warning])).toEqual([]);
    expect(run(p, { strategy: "balanced" }, [], [{ ...warning, severity: "info" }])).toHaveLength(2);
  });

  it("rolls back a seed a critical alert names; stops a layer after criticalAlertsToStop layer-wide ones", () => {
    const p = picture();
    put(p, 0, "GRAFTING", 0);
    const alert: AlertView = { layerId: "hidden", seedId: 0, severity: "critical", metric: "drift", value: 9 };
    expect(run(p, {}, [], [alert])[0]).toMatchObject({ kind: "rollback", action: "GRAFTING -> ROLLED_BACK" });
    expect(run(p, {}, [], [{ ...alert, severity: "warning" }]).some((x) => x.kind === "rollback")).toBe(false);
    p.layer("hidden")!.criticalAlerts = 3;
    expect(run(p)[0]).toMatchObject({ kind: "emergency_stop" });
  });
});

describe("population transitions (the reference's transition_population)", () => {
  it("selects by from-states, minimum performance and maximum failures; never terminal seeds or seeds already there", () => {
    const p = picture([{ ...PROFILE, numSeeds: 6 }]);
    const layer = p.layer("hidden")!;
    put(p, 0, "EVALUATING", 0);
    put(p, 1, "EVALUATING", 0);
    put(p, 2, "TRAINING", 0);
    put(p, 3, "CULLED", 0);
    put(p, 4, "FINE_TUNING", 0);
    p.observe(report("hidden", { 0: { performance_delta: 0.2 }, 1: { performance_delta: 0.01 } }));
    layer.seeds[0]!.failures = 1;
    const ids = (criteria: Parameters<typeof selectSeeds>[2]) => selectSeeds(layer.seeds, "FINE_TUNING", criteria).map((s) => s.seedId);
    expect(ids({ fromStates: ["EVALUATING"] })).toEqual([0, 1]);
    expect(ids({ fromStates: ["EVALUATING"], minPerformance: 0.1 })).toEqual([0]);
    expect(ids({ fromStates: ["EVALUATING"], maxFailures: 0 })).toEqual([1]);
    expect(ids({})).toEqual([0, 1, 2, 5]);
  });

  it("cuts a population into batches of at most batchSize, in order", () => {
    expect(batchesOf([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(() => batchesOf([1], 0)).toThrow(RangeError);
  });
});

describe("config", () => {
  it("refuses a strategy it does not know and values out of range, naming them", () => {
    expect(() => resolveTamiyoConfig({ strategy: "reckless" as never })).toThrow(/strategy must be one of conservative, balanced, aggressive, adaptive/);
    expect(() => resolveTamiyoConfig({ emergencyFailureRate: 0 })).toThrow(/emergencyFailureRate/);
    expect(resolveTamiyoConfig({ strategy: "aggressive", maxActiveSeeds: 9 })).toMatchObject({ maxActiveSeeds: 9, paramBudget: 0.25 });
  });
});
