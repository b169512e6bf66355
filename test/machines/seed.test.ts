/**
 * The seed machine on its own: every rejection code, every validator with the values it judged,
 * force, the bookkeeping (epochs, metrics, history, alpha), and the 16 edges. Driven both as a
 * live actor (answers come as `outcome` emissions) and through XState's pure transition().
 */
import { describe, expect, test } from "vitest";
import { createActor, initialTransition, transition, type AnyEventObject } from "xstate";
import { guardConfig, MAX_REASON_LENGTH, type GuardConfig, type SeedState } from "../../machines/lifecycle.ts";
import type { Metrics } from "../../machines/seed-rules.ts";
import {
  HISTORY_LIMIT,
  persistSeed,
  epochsInState,
  requestTransition,
  seedMachine,
  seedSnapshotOf,
  type BlueprintAnswer,
  type SeedOutcome,
  type SeedSnapshot,
  type TransitionRecord,
  type TransitionRequest,
} from "../../machines/seed.ts";
import { ROUTE } from "../runtime/commands.ts";
import { EDGES_BY_HAND, MIN_EPOCHS_BY_HAND, STATES_BY_HAND, TERMINALS_BY_HAND } from "../support/lifecycle-by-hand.ts";

/** The lifecycle written out by hand (test/support): the machine must have exactly these. */
const EXPECTED_EDGES = EDGES_BY_HAND;
const ALL_STATES = STATES_BY_HAND;
const TERMINALS = TERMINALS_BY_HAND;
const MIN_EPOCHS = MIN_EPOCHS_BY_HAND;

/** Metrics that satisfy the default validators of each edge that has one. */
const PASSING: Readonly<Record<string, Metrics>> = {
  "TRAINING->GRAFTING": { reconstruction_loss: 0.005 },
  "EVALUATING->FINE_TUNING": { performance_delta: 0.02, stability_score: 0.9 },
  "EVALUATING->CULLED": { performance_delta: -0.1 },
  "FINE_TUNING->FOSSILIZED": { total_improvement: 0.02, final_stability: 0.97 },
};

/** A live seed actor with its answers collected. */
const spawnSeed = (config?: GuardConfig, logic = seedMachine, snapshot?: SeedSnapshot) => {
  const actor = createActor(logic, { input: { seedId: 0, ...(config ? { config } : {}) }, ...(snapshot ? { snapshot } : {}) });
  const outcomes: SeedOutcome[] = [];
  actor.on("outcome", (o) => outcomes.push(o));
  actor.start();
  const seed = {
    actor,
    outcomes,
    state: () => actor.getSnapshot().value as SeedState,
    context: () => actor.getSnapshot().context,
    tick: (epochs: number) => actor.send({ type: "tick", epochs }),
    report: (metrics: Metrics) => actor.send({ type: "metrics", metrics }),
    /** Sends one request and returns its answer; every request is answered exactly once. */
    request: (target: string, options: Omit<TransitionRequest, "type"> = {}): SeedOutcome => {
      const before = outcomes.length;
      actor.send(requestTransition(target as SeedState, options));
      expect(outcomes.length - before, `answers to to.${target}`).toBe(1);
      return outcomes[outcomes.length - 1]!;
    },
    /** Forces the seed along ROUTE (validators skipped, graph kept); epochs in the end state are 0. */
    place: (state: SeedState, via: readonly SeedState[] = ROUTE[state]) => {
      for (const target of via) {
        const o = seed.request(target, { force: true });
        if (!o.ok) throw new Error(`placing at ${state}: ${target} refused (${o.code})`);
      }
      expect(seed.state()).toBe(state);
    },
    /** Takes one edge the honest way: waits out the minimum epochs and reports what its validator needs. */
    step: (to: SeedState): SeedOutcome => {
      const from = seed.state();
      seed.tick(MIN_EPOCHS[from] ?? 0);
      const metrics = PASSING[`${from}->${to}`];
      return seed.request(to, metrics ? { metrics } : {});
    },
  };
  return seed;
};

const outcomeIn = (actions: readonly unknown[]): SeedOutcome | undefined =>
  actions
    .map((a) => (a as { params?: { event?: AnyEventObject } }).params?.event)
    .find((e): e is SeedOutcome => e?.type === "outcome");

describe("invalid_transition: a request that is not an edge of the lifecycle", () => {
  test("rejects DORMANT -> FOSSILIZED and stays DORMANT", () => {
    const seed = spawnSeed();
    const o = seed.request("FOSSILIZED");
    expect(o).toMatchObject({ ok: false, code: "invalid_transition", from: "DORMANT", to: "FOSSILIZED" });
    expect(o.ok === false && o.error).toMatch(/DORMANT -> FOSSILIZED is not an edge.*may go to GERMINATED/);
    expect(seed.state()).toBe("DORMANT");
    expect(seed.context().history).toEqual([]);
  });

  test("rejects GERMINATED -> GRAFTING and names the states GERMINATED may go to", () => {
    const seed = spawnSeed();
    seed.place("GERMINATED");
    const o = seed.request("GRAFTING");
    expect(o).toMatchObject({ ok: false, code: "invalid_transition", from: "GERMINATED", to: "GRAFTING" });
    expect(o.ok === false && o.error).toMatch(/TRAINING, CANCELLED/);
    expect(seed.state()).toBe("GERMINATED");
  });

  test("rejects a request for the state the seed is already in (TRAINING -> TRAINING)", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(500);
    expect(seed.request("TRAINING")).toMatchObject({ ok: false, code: "invalid_transition" });
    expect(epochsInState(seed.context())).toBe(500);
  });

  test("rejects going backwards (GRAFTING -> TRAINING), even with enough epochs", () => {
    const seed = spawnSeed();
    seed.place("GRAFTING");
    seed.tick(1_000);
    expect(seed.request("TRAINING")).toMatchObject({ ok: false, code: "invalid_transition", from: "GRAFTING" });
    expect(seed.state()).toBe("GRAFTING");
  });
});

describe("guard_failed: min_epochs", () => {
  test.each([
    ["TRAINING", "GRAFTING", 100],
    ["GRAFTING", "STABILIZATION", 50],
    ["STABILIZATION", "EVALUATING", 20],
    ["EVALUATING", "FINE_TUNING", 30],
    ["FINE_TUNING", "FOSSILIZED", 50],
  ] as const)("refuses %s -> %s after %i - 1 epochs, naming the guard and the counts; allows it one epoch later", (from, to, required) => {
    const seed = spawnSeed();
    seed.place(from);
    const metrics = PASSING[`${from}->${to}`] ?? {};
    seed.tick(required - 1);
    const refused = seed.request(to, { metrics });
    expect(refused).toMatchObject({
      ok: false,
      code: "guard_failed",
      guard: "min_epochs",
      values: { epochs_in_state: required - 1, required },
    });
    expect(refused.ok === false && refused.error).toContain(`${required - 1} epochs in ${from}, needs at least ${required}`);
    expect(seed.state()).toBe(from);

    seed.tick(1);
    expect(seed.request(to, { metrics })).toMatchObject({ ok: true, from, to });
    expect(seed.state()).toBe(to);
  });

  test("guards every way out of a state but ROLLED_BACK: TRAINING -> CULLED at 99 epochs is refused", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(99);
    expect(seed.request("CULLED")).toMatchObject({ ok: false, code: "guard_failed", guard: "min_epochs" });
    expect(seed.request("CANCELLED")).toMatchObject({ ok: false, code: "guard_failed", guard: "min_epochs" });
  });

  test("GERMINATED needs no epochs: GERMINATED -> TRAINING at once", () => {
    const seed = spawnSeed();
    seed.place("GERMINATED");
    expect(seed.request("TRAINING")).toMatchObject({ ok: true });
  });

  test("a layer's guard overrides are what the seed judges by", () => {
    const seed = spawnSeed(guardConfig({ minEpochs: { TRAINING: 5 }, maxReconstructionLoss: 0.05 }));
    seed.place("TRAINING");
    seed.tick(5);
    expect(seed.request("GRAFTING", { metrics: { reconstruction_loss: 0.04 } })).toMatchObject({ ok: true });
  });
});

describe("guard_failed: reconstruction_loss (TRAINING -> GRAFTING)", () => {
  const inTraining = () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(100);
    return seed;
  };

  test("refuses when no reconstruction_loss was reported", () => {
    const seed = inTraining();
    expect(seed.request("GRAFTING")).toMatchObject({
      ok: false,
      code: "guard_failed",
      guard: "reconstruction_loss",
      values: { reconstruction_loss: null, threshold: 0.01 },
    });
    expect(seed.state()).toBe("TRAINING");
  });

  test("refuses a reconstruction_loss above 0.01 and reports it", () => {
    const seed = inTraining();
    seed.report({ reconstruction_loss: 0.02 });
    const o = seed.request("GRAFTING");
    expect(o).toMatchObject({ ok: false, code: "guard_failed", guard: "reconstruction_loss", values: { reconstruction_loss: 0.02, threshold: 0.01 } });
    expect(o.ok === false && o.error).toContain("reconstruction_loss 0.02, needs <= 0.01");
  });

  test("accepts a reconstruction_loss of exactly 0.01", () => {
    const seed = inTraining();
    seed.report({ reconstruction_loss: 0.01 });
    expect(seed.request("GRAFTING")).toMatchObject({ ok: true });
  });

  test("ignores a non-finite reconstruction_loss as not reported", () => {
    const seed = inTraining();
    seed.report({ reconstruction_loss: Number.NaN });
    expect(seed.request("GRAFTING")).toMatchObject({ ok: false, guard: "reconstruction_loss", values: { reconstruction_loss: null } });
  });
});

describe("guard_failed: positive_evaluation (EVALUATING -> FINE_TUNING)", () => {
  const inEvaluation = () => {
    const seed = spawnSeed();
    seed.place("EVALUATING");
    seed.tick(30);
    return seed;
  };

  test.each([
    [{}, { performance_delta: null, stability_score: null }],
    [{ performance_delta: 0, stability_score: 0.9 }, { performance_delta: 0, stability_score: 0.9 }],
    [{ performance_delta: -0.01, stability_score: 0.99 }, { performance_delta: -0.01, stability_score: 0.99 }],
    [{ performance_delta: 0.02, stability_score: 0.79 }, { performance_delta: 0.02, stability_score: 0.79 }],
  ])("refuses metrics %j, reporting %j", (metrics, values) => {
    const seed = inEvaluation();
    expect(seed.request("FINE_TUNING", { metrics })).toMatchObject({ ok: false, code: "guard_failed", guard: "positive_evaluation", values });
    expect(seed.state()).toBe("EVALUATING");
  });

  test("accepts a positive performance_delta with stability_score of exactly 0.8", () => {
    const seed = inEvaluation();
    expect(seed.request("FINE_TUNING", { metrics: { performance_delta: 0.001, stability_score: 0.8 } })).toMatchObject({ ok: true });
  });
});

describe("guard_failed: cull_condition (EVALUATING -> CULLED)", () => {
  const inEvaluation = () => {
    const seed = spawnSeed();
    seed.place("EVALUATING");
    seed.tick(30);
    return seed;
  };

  test("refuses when nothing was reported", () => {
    const seed = inEvaluation();
    expect(seed.request("CULLED")).toMatchObject({
      ok: false,
      code: "guard_failed",
      guard: "cull_condition",
      values: { performance_delta: null, error_rate: null, error_count: 0 },
    });
  });

  test("refuses when every condition sits exactly on its threshold", () => {
    const seed = inEvaluation();
    for (let i = 0; i < 5; i++) seed.actor.send({ type: "error" });
    const o = seed.request("CULLED", { metrics: { performance_delta: -0.05, error_rate: 0.1 } });
    expect(o).toMatchObject({
      ok: false,
      code: "guard_failed",
      guard: "cull_condition",
      values: { performance_delta: -0.05, error_rate: 0.1, error_count: 5 },
    });
    expect(seed.state()).toBe("EVALUATING");
  });

  test("culls on performance_delta below -0.05 alone", () => {
    const seed = inEvaluation();
    expect(seed.request("CULLED", { metrics: { performance_delta: -0.06 } })).toMatchObject({ ok: true, to: "CULLED" });
  });

  test("culls on error_rate above 0.1 alone", () => {
    const seed = inEvaluation();
    expect(seed.request("CULLED", { metrics: { error_rate: 0.11, performance_delta: 0.5 } })).toMatchObject({ ok: true, to: "CULLED" });
  });

  test("culls on more than 5 errors counted by the seed alone", () => {
    const seed = inEvaluation();
    for (let i = 0; i < 6; i++) seed.actor.send({ type: "error", message: `fault ${i}` });
    expect(seed.context().errorCount).toBe(6);
    expect(seed.request("CULLED")).toMatchObject({ ok: true, to: "CULLED" });
  });

  test("culls on more than 5 errors reported as the error_count metric", () => {
    const seed = inEvaluation();
    expect(seed.request("CULLED", { metrics: { error_count: 6 } })).toMatchObject({ ok: true, to: "CULLED" });
  });
});

describe("guard_failed: fossilization (FINE_TUNING -> FOSSILIZED)", () => {
  const inFineTuning = () => {
    const seed = spawnSeed();
    seed.place("FINE_TUNING");
    seed.tick(50);
    return seed;
  };

  test.each([
    [{}, { total_improvement: null, final_stability: null }],
    [{ total_improvement: 0.009, final_stability: 0.97 }, { total_improvement: 0.009, final_stability: 0.97 }],
    [{ total_improvement: 0.02, final_stability: 0.94 }, { total_improvement: 0.02, final_stability: 0.94 }],
  ])("refuses metrics %j, reporting %j", (metrics, values) => {
    const seed = inFineTuning();
    const o = seed.request("FOSSILIZED", { metrics });
    expect(o).toMatchObject({ ok: false, code: "guard_failed", guard: "fossilization", values });
    expect(o.ok === false && o.error).toContain("needs >= 0.95");
    expect(seed.state()).toBe("FINE_TUNING");
  });

  test("accepts total_improvement 0.01 with final_stability 0.95, both exactly on the threshold", () => {
    const seed = inFineTuning();
    expect(seed.request("FOSSILIZED", { metrics: { total_improvement: 0.01, final_stability: 0.95 } })).toMatchObject({ ok: true });
    expect(seed.state()).toBe("FOSSILIZED");
  });
});

describe("terminal_state: a terminal seed accepts nothing", () => {
  test.each(TERMINALS)("%s refuses every request, forced or not, and does not change", (terminal) => {
    const seed = spawnSeed();
    seed.place(terminal);
    seed.tick(1_000);
    const before = seed.context();
    for (const target of ALL_STATES) {
      for (const force of [false, true]) {
        const o = seed.request(target, { force });
        expect(o).toMatchObject({ ok: false, code: "terminal_state", from: terminal, to: target });
        expect(o.ok === false && o.error).toContain(`seed is ${terminal}, a terminal state`);
      }
    }
    expect(seed.state()).toBe(terminal);
    expect(seed.context()).toEqual(before);
  });

  test("a terminal seed keeps its blueprint and says so: a terminal_state answer, never silence", () => {
    const seed = spawnSeed();
    seed.place("CULLED");
    const answers: BlueprintAnswer[] = [];
    seed.actor.on("blueprint.answer", (a) => answers.push(a));
    seed.actor.send({ type: "blueprint", blueprintId: "late", strategy: "momentum", commandId: "c-late" });
    expect(seed.context()).toMatchObject({ blueprintId: null, strategy: "linear" });
    expect(answers).toEqual([{ type: "blueprint.answer", seedId: 0, commandId: "c-late", ok: false, code: "terminal_state", error: expect.stringMatching(/CULLED, a terminal state/) }]);
  });

  test("a live seed answers a blueprint it took, naming the one it replaced", () => {
    const seed = spawnSeed();
    const answers: BlueprintAnswer[] = [];
    seed.actor.on("blueprint.answer", (a) => answers.push(a));
    seed.actor.send({ type: "blueprint", blueprintId: "bp", commandId: "c-1" });
    seed.actor.send({ type: "blueprint", blueprintId: "bp2", commandId: "c-2" });
    expect(answers).toEqual([
      { type: "blueprint.answer", seedId: 0, commandId: "c-1", ok: true, previousBlueprintId: null },
      { type: "blueprint.answer", seedId: 0, commandId: "c-2", ok: true, previousBlueprintId: "bp" },
    ]);
    expect(seed.context().blueprintId).toBe("bp2");
  });

  test("a reason is recorded up to MAX_REASON_LENGTH characters, in the history and the outcome", () => {
    const seed = spawnSeed();
    seed.actor.send(requestTransition("GERMINATED", { reason: "r".repeat(70_000) }));
    const recorded = seed.context().history.at(-1)!.reason;
    expect(recorded.length).toBe(MAX_REASON_LENGTH);
    expect(recorded.endsWith("…")).toBe(true);
    expect(seed.outcomes.at(-1)!.reason).toBe(recorded);
  });
});

describe("force skips the validators, never the graph", () => {
  test("forced DORMANT -> FOSSILIZED is still invalid_transition", () => {
    const seed = spawnSeed();
    expect(seed.request("FOSSILIZED", { force: true })).toMatchObject({ ok: false, code: "invalid_transition", forced: true });
    expect(seed.state()).toBe("DORMANT");
  });

  test("forced GERMINATED -> GRAFTING is still invalid_transition", () => {
    const seed = spawnSeed();
    seed.place("GERMINATED");
    expect(seed.request("GRAFTING", { force: true })).toMatchObject({ ok: false, code: "invalid_transition" });
  });

  test("forced TRAINING -> GRAFTING at 0 epochs with no loss reported is accepted and recorded as forced", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    expect(seed.request("GRAFTING")).toMatchObject({ ok: false, code: "guard_failed" });
    expect(seed.request("GRAFTING", { force: true, reason: "operator override" })).toMatchObject({ ok: true, forced: true });
    expect(seed.context().history.at(-1)).toMatchObject({ from: "TRAINING", to: "GRAFTING", forced: true, reason: "operator override" });
  });

  test("forced FINE_TUNING -> FOSSILIZED skips the fossilization validator", () => {
    const seed = spawnSeed();
    seed.place("FINE_TUNING");
    expect(seed.request("FOSSILIZED", { force: true, metrics: { total_improvement: -1 } })).toMatchObject({ ok: true });
  });
});

describe("ROLLED_BACK is the emergency exit", () => {
  test.each(["GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"] as const)("%s -> ROLLED_BACK needs no minimum epochs and no force", (from) => {
    const seed = spawnSeed();
    seed.place(from);
    expect(epochsInState(seed.context())).toBe(0);
    expect(seed.request("ROLLED_BACK")).toMatchObject({ ok: true, forced: false, from, to: "ROLLED_BACK" });
  });

  test.each(["DORMANT", "GERMINATED", "TRAINING"] as const)("%s has no way to ROLLED_BACK", (from) => {
    const seed = spawnSeed();
    seed.place(from);
    expect(seed.request("ROLLED_BACK", { force: true })).toMatchObject({ ok: false, code: "invalid_transition" });
  });
});

describe("bookkeeping", () => {
  test("ticks add up while in a state", () => {
    const seed = spawnSeed();
    seed.tick(30);
    seed.tick(20);
    expect(epochsInState(seed.context())).toBe(50);
  });

  test("epochs reset on every transition, and the answer and history keep how long the seed stayed", () => {
    const seed = spawnSeed();
    const path: readonly SeedState[] = ROUTE.FOSSILIZED;
    path.forEach((target, i) => {
      const from = seed.state();
      const stayed = (MIN_EPOCHS[from] ?? 0) + i + 1;
      seed.tick(stayed);
      const metrics = PASSING[`${from}->${target}`];
      const o = seed.request(target, metrics ? { metrics } : {});
      expect(o).toMatchObject({ ok: true, from, to: target, epochsInFrom: stayed });
      expect(epochsInState(seed.context())).toBe(0);
      expect(seed.context().history.at(-1)).toMatchObject({ from, to: target, epochs: stayed });
    });
    expect(seed.state()).toBe("FOSSILIZED");
  });

  test("a refused request leaves the epochs as they were", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(42);
    seed.request("GRAFTING");
    expect(epochsInState(seed.context())).toBe(42);
  });

  test("metrics carried by the request count, over a worse value reported earlier, and are kept", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(100);
    seed.report({ reconstruction_loss: 0.5, other: 1 });
    expect(seed.request("GRAFTING", { metrics: { reconstruction_loss: 0.005 } })).toMatchObject({
      ok: true,
      metrics: { reconstruction_loss: 0.005, other: 1 },
    });
    expect(seed.context().metrics).toEqual({ reconstruction_loss: 0.005, other: 1 });
  });

  test("a refused request's metrics are judged but not kept", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    seed.tick(100);
    expect(seed.request("GRAFTING", { metrics: { reconstruction_loss: 0.3 } })).toMatchObject({
      ok: false,
      values: { reconstruction_loss: 0.3 },
    });
    expect(seed.context().metrics).toEqual({});
  });

  test("reported metrics merge into what the seed knows", () => {
    const seed = spawnSeed();
    seed.report({ a: 1, b: 2 });
    seed.report({ b: 3 });
    expect(seed.context().metrics).toEqual({ a: 1, b: 3 });
  });

  test("the answer echoes the command id, reason and time, and history records them", () => {
    const seed = spawnSeed();
    const o = seed.request("GERMINATED", { commandId: "cmd-1", reason: "loss plateau", at: 1_234 });
    expect(o).toMatchObject({ seedId: 0, commandId: "cmd-1", reason: "loss plateau", at: 1_234, forced: false });
    expect(seed.context().history).toEqual([{ from: "DORMANT", to: "GERMINATED", forced: false, reason: "loss plateau", epochs: 0, at: 1_234 }]);
  });

  test(`history keeps the newest ${HISTORY_LIMIT} transitions, newest last`, () => {
    const old: TransitionRecord[] = Array.from({ length: HISTORY_LIMIT }, (_, i) => ({
      from: "TRAINING",
      to: "CANCELLED",
      forced: false,
      reason: `earlier life ${i}`,
      epochs: i,
      at: i,
    }));
    const fresh = persistSeed(createActor(seedMachine, { input: { seedId: 0 } }).getSnapshot());
    const seed = spawnSeed(undefined, seedMachine, seedSnapshotOf(seedMachine, { state: "DORMANT", context: { ...fresh.context, history: old } }));
    seed.request("GERMINATED", { reason: "newest" });
    seed.request("TRAINING", { reason: "newer still" });
    const history = seed.context().history;
    expect(history).toHaveLength(HISTORY_LIMIT);
    expect(history[0]!.reason).toBe("earlier life 2");
    expect(history.slice(-2).map((r) => r.reason)).toEqual(["newest", "newer still"]);
    expect(HISTORY_LIMIT).toBeGreaterThan(0);
  });

  test("a blueprint sets the seed's blueprint and strategy; a later one without strategy keeps it", () => {
    const seed = spawnSeed();
    seed.actor.send({ type: "blueprint", blueprintId: "bp-1", strategy: "momentum" });
    seed.actor.send({ type: "blueprint", blueprintId: "bp-2" });
    expect(seed.context()).toMatchObject({ blueprintId: "bp-2", strategy: "momentum" });
    expect(seed.outcomes).toEqual([]);
  });

  test("each error event is counted", () => {
    const seed = spawnSeed();
    seed.actor.send({ type: "error" });
    seed.actor.send({ type: "error", message: "nan in blueprint output" });
    expect(seed.context().errorCount).toBe(2);
  });
});

describe("alpha on entering each state", () => {
  // CULLED and ROLLED_BACK are reached from FINE_TUNING (alpha 1), so dropping to 0 is visible.
  const via: Partial<Record<SeedState, readonly SeedState[]>> = {
    CULLED: [...ROUTE.FINE_TUNING, "CULLED"],
    ROLLED_BACK: [...ROUTE.FINE_TUNING, "ROLLED_BACK"],
  };
  test.each([
    ["DORMANT", 0],
    ["GERMINATED", 0],
    ["TRAINING", 0],
    ["GRAFTING", 0],
    ["STABILIZATION", 1],
    ["EVALUATING", 1],
    ["FINE_TUNING", 1],
    ["FOSSILIZED", 1],
    ["CULLED", 0],
    ["CANCELLED", 0],
    ["ROLLED_BACK", 0],
  ] as const)("%s holds alpha %d", (state, alpha) => {
    const seed = spawnSeed();
    seed.place(state, via[state] ?? ROUTE[state]);
    expect(seed.context().alpha).toBe(alpha);
  });
});

describe("the 16 edges", () => {
  test("the hand-written list has 16 distinct edges", () => {
    expect(new Set(EXPECTED_EDGES.map(([f, t]) => `${f}->${t}`)).size).toBe(16);
  });

  test.each(EXPECTED_EDGES)("%s -> %s is taken with the default validators, unforced", (from, to) => {
    const seed = spawnSeed();
    for (const hop of ROUTE[from]) expect(seed.step(hop)).toMatchObject({ ok: true, to: hop });
    expect(seed.state()).toBe(from);
    expect(seed.step(to)).toMatchObject({ ok: true, forced: false, from, to });
    expect(seed.state()).toBe(to);
  });

  test("forced requests from every state to every state are accepted on exactly the 16 edges (pure transition())", () => {
    const [initial] = initialTransition(seedMachine, { seedId: 0 });
    const at = (state: SeedState): SeedSnapshot =>
      ROUTE[state].reduce((snap, hop) => transition(seedMachine, snap, requestTransition(hop, { force: true }))[0], initial);
    const accepted: string[] = [];
    for (const from of ALL_STATES) {
      const snapshot = at(from);
      expect(snapshot.value).toBe(from);
      for (const to of ALL_STATES) {
        const [next, actions] = transition(seedMachine, snapshot, requestTransition(to, { force: true }));
        const outcome = outcomeIn(actions);
        expect(outcome, `${from} -> ${to} answered`).toBeDefined();
        if (outcome!.ok) {
          accepted.push(`${from}->${to}`);
          expect(next.value).toBe(to);
        } else {
          expect(next.value).toBe(from);
          expect(outcome!.code).toBe(TERMINALS.includes(from) ? "terminal_state" : "invalid_transition");
          // The written edges and the edge table must agree: a refusal is never "internal".
          expect(outcome!.error).toMatch(TERMINALS.includes(from) ? /a terminal state/ : /is not an edge of the lifecycle/);
        }
      }
    }
    expect(accepted.sort()).toEqual(EXPECTED_EDGES.map(([f, t]) => `${f}->${t}`).sort());
  });
});

describe("pure transition() judges without executing", () => {
  test("initialTransition() starts DORMANT with empty bookkeeping", () => {
    const [snapshot, actions] = initialTransition(seedMachine, { seedId: 7 });
    expect(snapshot.value).toBe("DORMANT");
    expect(snapshot.context).toMatchObject({ seedId: 7, alpha: 0, epoch: 0, enteredAt: 0, errorCount: 0, blueprintId: null, history: [] });
    expect(actions).toEqual([]);
  });

  test("a refused request returns the same state and the rejection as an emit action", () => {
    const [s0] = initialTransition(seedMachine, { seedId: 0 });
    const [s1, actions] = transition(seedMachine, s0, requestTransition("FOSSILIZED", { commandId: "c" }));
    expect(s1.value).toBe("DORMANT");
    expect(outcomeIn(actions)).toMatchObject({ ok: false, code: "invalid_transition", commandId: "c" });
  });

  test("the entered hook is returned, not run: a throwing hook does not throw from transition()", () => {
    const faulty = seedMachine.provide({
      actions: {
        entered: () => {
          throw new Error("hook ran");
        },
      },
    });
    const [s0] = initialTransition(faulty, { seedId: 0 });
    const [s1, actions] = transition(faulty, s0, requestTransition("GERMINATED"));
    expect(s1.value).toBe("GERMINATED");
    expect(actions.map((a) => a.type)).toContain("entered");
    expect(outcomeIn(actions)).toMatchObject({ ok: true, from: "DORMANT", to: "GERMINATED" });
  });

  test("a tick through transition() moves the epochs and answers nothing", () => {
    const [s0] = initialTransition(seedMachine, { seedId: 0 });
    const [s1, actions] = transition(seedMachine, s0, { type: "tick", epochs: 3 });
    expect(epochsInState(s1.context)).toBe(3);
    expect(outcomeIn(actions)).toBeUndefined();
  });
});

describe("dwell time counted in the layer's epochs", () => {
  test("a request carrying the layer's epoch is judged at it; the seed never counts backwards", () => {
    const seed = spawnSeed();
    seed.place("TRAINING");
    expect(seed.request("GRAFTING", { epoch: 99, metrics: { reconstruction_loss: 0.001 } })).toMatchObject({ ok: false, guard: "min_epochs" });
    const o = seed.request("GRAFTING", { epoch: 100, metrics: { reconstruction_loss: 0.001 } });
    expect(o).toMatchObject({ ok: true, epochsInFrom: 100 });
    expect(seed.context()).toMatchObject({ epoch: 100, enteredAt: 100 });
    // An older epoch (a late request) does not take the seed back in time.
    expect(seed.request("STABILIZATION", { epoch: 30 })).toMatchObject({ ok: false, guard: "min_epochs", values: { epochs_in_state: 0 } });
    expect(epochsInState(seed.context(), 180)).toBe(80);
  });
});
