/**
 * Tamiyo running: the controller actor with its policy, reading telemetry from the layers'
 * telemetry streams and steering a real layer actor on the embedded bus. No data plane: the
 * numbers a trainer would report are reported by the test.
 */
import { Cause, Effect, Exit, Scope } from "effect";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { makeSystem, startSystem, type EsperSystem } from "../../src/runtime/system.ts";
import { makeTamiyo, startTamiyo, TamiyoError, type DecisionLogEntry, type Tamiyo, type TamiyoLink } from "../../src/tamiyo/tamiyo.ts";
import { TamiyoConfigError, type TamiyoConfig } from "../../src/tamiyo/config.ts";
import type { LayerProfile } from "../../src/tamiyo/population.ts";

const GUARDS = { minEpochs: { TRAINING: 4, GRAFTING: 2, STABILIZATION: 1, EVALUATING: 1, FINE_TUNING: 2 } };
const PROFILE: LayerProfile = { layerId: "hidden", numSeeds: 4, hostParams: 10_000, blueprints: [{ id: "lateral_wide", params: 610 }], guards: GUARDS };

let scope: Scope.Closeable | null = null;
afterEach(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void));
  scope = null;
});

interface Setup {
  readonly config?: TamiyoConfig;
  readonly layerGuards?: typeof GUARDS;
  readonly profile?: LayerProfile;
  /** The layer's blueprint registry (default: any id, first-seen order). */
  readonly blueprintIndex?: (id: string | null) => number;
  /** Wraps the system as Tamiyo's link (e.g. one that never answers). */
  readonly link?: (system: EsperSystem) => TamiyoLink;
  /** Rounds of her own at the trainer's pace. */
  readonly decideEveryTicks?: number;
}

const start = async (setup: Setup | TamiyoConfig = {}, layerGuards?: typeof GUARDS): Promise<{ system: EsperSystem; tamiyo: Tamiyo; decided: DecisionLogEntry[] }> => {
  const s: Setup = "strategy" in setup || "maxActiveSeeds" in setup || "minDecidedForHealth" in setup ? { config: setup as TamiyoConfig } : (setup as Setup);
  scope = Scope.makeUnsafe();
  const open = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(effect, scope!));
  const bus = new MemoryBus();
  const guards = layerGuards ?? s.layerGuards ?? GUARDS;
  const system = await open(makeSystem({ layers: [{ id: "hidden", seeds: 4, guards, ...(s.blueprintIndex ? { blueprintIndex: s.blueprintIndex } : {}) }], bus, inspect: "" }));
  const decided: DecisionLogEntry[] = [];
  const config = s.config ?? { strategy: "aggressive", maxActiveSeeds: 1 };
  const link = s.link ? s.link(system) : system;
  const tamiyo = await open(makeTamiyo({ bus, link, layers: [s.profile ?? PROFILE], config, ...(s.decideEveryTicks !== undefined ? { decideEveryTicks: s.decideEveryTicks } : {}), onDecision: (d) => void (d.outcome === undefined && decided.push(d)) }));
  return { system, tamiyo, decided };
};

const stateOf = (system: EsperSystem, seed: number) => system.layer("hidden").seeds()[seed]!.state;

describe("Tamiyo on a live layer", () => {
  it("decideEveryTicks: she decides on her own when the layer has ticked that many more epochs, not before", async () => {
    const { system, decided, tamiyo } = await start({ config: { strategy: "aggressive", maxActiveSeeds: 1 }, decideEveryTicks: 3 });
    await system.reportMetrics("hidden", { 0: { sparsity: 0.2, gradient_norm: 1 }, 3: { sparsity: 1, gradient_norm: 0 } } as never);
    await system.tick("hidden", 1);
    await system.tick("hidden", 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(tamiyo.stats().rounds).toBe(0);
    expect(decided).toEqual([]);
    await system.tick("hidden", 1);
    await expect.poll(() => decided.map((d) => [d.kind, d.seedId]), { timeout: 5_000 }).toEqual([["germinate", 3]]);
    await expect.poll(() => stateOf(system, 3), { timeout: 5_000 }).toBe("GERMINATED");
    expect(tamiyo.stats().rounds).toBe(1);
  });

  it("decideEveryTicks must be a positive integer: a TamiyoConfigError", async () => {
    await expect(start({ decideEveryTicks: 0 })).rejects.toThrow(/decideEveryTicks must be a positive integer/);
  });

  it("grows a dead chunk's seed all the way to FOSSILIZED on the numbers reported, logging each decision and its answer", async () => {
    const { system, tamiyo, decided } = await start();
    await system.reportMetrics("hidden", { 0: { sparsity: 0.2, gradient_norm: 1 }, 3: { sparsity: 1, gradient_norm: 0 } } as never);
    const germinated = await tamiyo.round();
    expect(germinated.map((d) => [d.kind, d.seedId, d.action])).toEqual([["germinate", 3, "germinate with lateral_wide"]]);
    expect(germinated[0]!.outcome).toMatchObject({ success: true, code: "ok" });
    expect(stateOf(system, 3)).toBe("GERMINATED");
    expect(system.layer("hidden").seeds()[3]!.context.blueprintId).toBe("lateral_wide");

    await tamiyo.round(); // telemetry needed for a round: nothing new, nothing decided
    await system.tick("hidden", 1);
    expect((await tamiyo.round()).map((d) => d.action)).toEqual(["GERMINATED -> TRAINING"]);
    await system.reportMetrics("hidden", { 3: { reconstruction_loss: 0.002 } });
    await system.tick("hidden", 4);
    expect((await tamiyo.round()).map((d) => d.action)).toEqual(["TRAINING -> GRAFTING"]);
    await system.reportMetrics("hidden", { 3: { alpha: 1 } } as never);
    await system.tick("hidden", 2);
    expect((await tamiyo.round()).map((d) => d.action)).toEqual(["GRAFTING -> STABILIZATION"]);
    await system.tick("hidden", 1);
    expect((await tamiyo.round()).map((d) => d.action)).toEqual(["STABILIZATION -> EVALUATING"]);
    await system.tick("hidden", 1);
    await system.reportMetrics("hidden", { 3: { performance_delta: 0.05, stability_score: 0.97 } });
    expect((await tamiyo.round()).map((d) => d.action)).toEqual(["EVALUATING -> FINE_TUNING"]);
    await system.tick("hidden", 2);
    await system.reportMetrics("hidden", { 3: { total_improvement: 0.04, final_stability: 0.99 } });
    const [fossil] = await tamiyo.round();
    expect(fossil).toMatchObject({ kind: "fossilize", action: "FINE_TUNING -> FOSSILIZED", numbers: { total_improvement: 0.04, final_stability: 0.99 }, outcome: { success: true } });
    expect(stateOf(system, 3)).toBe("FOSSILIZED");
    expect(decided.map((d) => d.kind)).toEqual(["germinate", "advance", "advance", "advance", "advance", "advance", "fossilize"]);
    expect(tamiyo.outcomes()).toEqual([{ layerId: "hidden", blueprint: "lateral_wide", improvement: 0.04, params: 610, fossilized: true }]);
    expect(tamiyo.stats()).toMatchObject({ refused: 0, timedOut: 0 });
  });

  it("a decision the layer refuses is logged with the layer's code; a guard's no is not a failure, and the seed is tried again", async () => {
    // Tamiyo was told TRAINING needs 4 ticks; the layer itself requires 6.
    const { system, tamiyo } = await start({}, { minEpochs: { ...GUARDS.minEpochs, TRAINING: 6 } });
    await system.reportMetrics("hidden", { 3: { sparsity: 1 } } as never);
    await tamiyo.round();
    await system.tick("hidden", 1);
    await tamiyo.round(); // -> TRAINING
    await system.reportMetrics("hidden", { 3: { reconstruction_loss: 0.001 } });
    await system.tick("hidden", 4);
    const [refused] = await tamiyo.round();
    expect(refused).toMatchObject({ action: "TRAINING -> GRAFTING", outcome: { success: false, code: "guard_failed" } });
    expect(refused!.outcome!.error).toMatch(/4 epochs in TRAINING, needs at least 6/);
    expect(tamiyo.population.seed("hidden", 3)).toMatchObject({ busy: false, failures: 0, state: "TRAINING" });
    expect(tamiyo.stats().refused).toBe(1);
    await system.tick("hidden", 2);
    const [again] = await tamiyo.round();
    expect(again).toMatchObject({ action: "TRAINING -> GRAFTING", outcome: { success: true } });
  });

  it("stops a layer when its seeds keep failing: the emergency path", async () => {
    const { system, tamiyo } = await start({ strategy: "aggressive", minDecidedForHealth: 2, maxActiveSeeds: 2 });
    await system.reportMetrics("hidden", { 0: { sparsity: 1 }, 1: { sparsity: 1 } } as never);
    await tamiyo.round();
    await system.tick("hidden", 1);
    await tamiyo.round(); // both -> TRAINING
    expect([stateOf(system, 0), stateOf(system, 1)]).toEqual(["TRAINING", "TRAINING"]);
    await system.reportMetrics("hidden", { 0: { reconstruction_loss: 0.4 }, 1: { reconstruction_loss: 0.4 } });
    await system.tick("hidden", 8);
    const culls = await tamiyo.round();
    expect(culls.map((d) => [d.seedId, d.action])).toEqual([
      [0, "TRAINING -> CULLED"],
      [1, "TRAINING -> CULLED"],
    ]);
    await system.tick("hidden", 1);
    const [stop] = await tamiyo.round();
    expect(stop).toMatchObject({ kind: "emergency_stop", numbers: { failure_rate: 1, decided: 2 }, outcome: { success: true } });
    expect(tamiyo.population.layer("hidden")!.stopped).toBe(true);
    const refused = await system.transition("hidden", 2, "GERMINATED");
    expect(refused.code).toBe("emergency_stopped");
  });

  it("moves a population by selection criteria in batches of the given size", async () => {
    const { system, tamiyo } = await start({ strategy: "conservative" });
    const result = await tamiyo.transitionPopulation("hidden", "GERMINATED", { fromStates: ["DORMANT"] }, 3);
    expect(result).toMatchObject({ selected: [0, 1, 2, 3], transitioned: 4, failed: 0 });
    expect(result.results).toHaveLength(2);
    expect(system.layer("hidden").seeds().map((s) => s.state)).toEqual(["GERMINATED", "GERMINATED", "GERMINATED", "GERMINATED"]);
    await expect(tamiyo.transitionPopulation("nope", "TRAINING")).rejects.toBeInstanceOf(TamiyoError);
    expect(tamiyo.log().map((d) => [d.action, d.outcome?.code])).toEqual([
      ["3 seeds -> GERMINATED", "ok"],
      ["1 seeds -> GERMINATED", "ok"],
    ]);
  });

  it("a population transition a stopped layer refuses whole counts every seed in it as failed", async () => {
    const { system, tamiyo } = await start({ strategy: "conservative" });
    await system.emergencyStop("hidden", "test");
    const result = await tamiyo.transitionPopulation("hidden", "GERMINATED", { fromStates: ["DORMANT"] });
    expect(result).toMatchObject({ selected: [0, 1, 2, 3], transitioned: 0, failed: 4 });
  });

  it("a command its layer never answers times out after commandTimeoutMs: the round ends, the seed is free again", async () => {
    const silent = (system: EsperSystem): TamiyoLink => ({ send: () => new Promise(() => {}), subscribe: (l) => system.subscribe(l) });
    const { system, tamiyo } = await start({ config: { strategy: "aggressive", maxActiveSeeds: 1, commandTimeoutMs: 50 }, link: silent });
    await system.reportMetrics("hidden", { 3: { sparsity: 1 } } as never);
    const [late] = await tamiyo.round();
    expect(late).toMatchObject({ kind: "germinate", outcome: { success: false, code: "timeout" } });
    expect(late!.outcome!.error).toMatch(/no answer within 50 ms/);
    expect(tamiyo.stats().timedOut).toBe(1);
    expect(tamiyo.population.seed("hidden", 3)).toMatchObject({ busy: false, failures: 1 });
  });

  it("a kind the layer refuses is remembered as worth nothing there: the next germination takes the next kind", async () => {
    const profile: LayerProfile = { ...PROFILE, blueprints: [{ id: "lateral_wide", params: 610 }, { id: "lateral_mlp", params: 306 }] };
    const { system, tamiyo } = await start({ config: { strategy: "aggressive", maxActiveSeeds: 1 }, profile, blueprintIndex: (id) => (id === null ? -1 : id === "lateral_mlp" ? 4 : -1) });
    await system.reportMetrics("hidden", { 3: { sparsity: 1 } } as never);
    const [refused] = await tamiyo.round();
    expect(refused).toMatchObject({ action: "germinate with lateral_wide", outcome: { success: false, code: "invalid_message" } });
    expect(refused!.outcome!.error).toMatch(/layer hidden has no such blueprint/);
    await system.reportMetrics("hidden", { 3: { sparsity: 1 } } as never);
    const [taken] = await tamiyo.round();
    expect(taken).toMatchObject({ action: "germinate with lateral_mlp", outcome: { success: true } });
  });

  it("a seed whose command succeeded is taken as moved even before its transition event arrives", async () => {
    const { system, tamiyo } = await start({ config: { strategy: "aggressive", maxActiveSeeds: 1 }, link: (sys) => ({ send: sys.send, subscribe: () => () => {} }) });
    await system.reportMetrics("hidden", { 3: { sparsity: 1 } } as never);
    await tamiyo.round();
    expect(tamiyo.population.seed("hidden", 3)).toMatchObject({ state: "GERMINATED", blueprint: "lateral_wide", busy: false });
    await system.tick("hidden", 1);
    expect((await tamiyo.round()).map((d) => [d.action, d.outcome?.code])).toEqual([["GERMINATED -> TRAINING", "ok"]]);
  });
});

describe("a config Tamiyo cannot work with", () => {
  it("is a typed failure of makeTamiyo (not a defect), and startTamiyo rejects with the same TamiyoConfigError", async () => {
    const bus = new MemoryBus();
    const system = await startSystem({ layers: [{ id: "hidden", seeds: 4 }], bus, inspect: "" });
    try {
      const options = { bus, link: system, layers: [PROFILE], config: { strategy: "reckless" as never } };
      const exit = await Effect.runPromiseExit(Effect.scoped(makeTamiyo(options)));
      expect(Exit.isFailure(exit) && Cause.hasFails(exit.cause)).toBe(true);
      const failure = Exit.isFailure(exit) ? Cause.squash(exit.cause) : null;
      expect(failure).toBeInstanceOf(TamiyoConfigError);
      await expect(startTamiyo(options)).rejects.toThrow(/strategy must be one of conservative, balanced, aggressive, adaptive/);
      await expect(startTamiyo(options)).rejects.toBeInstanceOf(TamiyoConfigError);
    } finally {
      await system.close();
    }
  });
});
