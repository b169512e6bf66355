/**
 * The layer machine, driven through its host (LayerHost.apply): routing, atomic and non-atomic
 * batches, emergency stop, the state table it mirrors, and the StateTransitionEvents it reports.
 */
import { describe, expect, test } from "vitest";
import { MAX_REASON_LENGTH, type SeedState } from "../../machines/lifecycle.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import { StateTable } from "../../src/kasmina/state-table.ts";
import { batch, blueprint, emergencyStop, lifecycle, placeSeed, resume } from "../runtime/commands.ts";

const L = "dense1";
const host = (numSeeds = 4, options: Partial<ConstructorParameters<typeof LayerHost>[0]> = {}) =>
  new LayerHost({ layerId: L, numSeeds, ...options });
const states = (h: LayerHost) => h.seeds().map((s) => s.state);

/** Row codes of the state table, by hand: a state's index in the lifecycle's order. */
const CODE: Readonly<Record<SeedState, number>> = {
  DORMANT: 0,
  GERMINATED: 1,
  TRAINING: 2,
  GRAFTING: 3,
  STABILIZATION: 4,
  EVALUATING: 5,
  FINE_TUNING: 6,
  FOSSILIZED: 7,
  CULLED: 8,
  CANCELLED: 9,
  ROLLED_BACK: 10,
};
const ONE_PER_STATE = Object.keys(CODE) as SeedState[];

describe("routing", () => {
  test("a command to seed_id null reaches every seed and gets one result listing each seed", () => {
    const h = host(4);
    const command = lifecycle(L, null, "GERMINATED");
    const { result, transitions } = h.apply(command);
    expect(result).toMatchObject({ message_type: "CommandResult", correlation_id: command.message_id, layer_id: L, seed_id: null, success: true, code: "ok", error: null });
    expect(result.details).toEqual({
      moved: 4,
      results: [0, 1, 2, 3].map((seed_id) => ({ seed_id, code: "ok", from_state: "DORMANT" })),
    });
    expect(transitions.map((t) => t.seed_id)).toEqual([0, 1, 2, 3]);
    expect(states(h)).toEqual(["GERMINATED", "GERMINATED", "GERMINATED", "GERMINATED"]);
  });

  test("a command to seed_id null that one seed refuses: the others move, the result names each seed's answer", () => {
    const h = host(3);
    h.apply(lifecycle(L, 1, "GERMINATED"));
    const { result, transitions } = h.apply(lifecycle(L, null, "GERMINATED"));
    expect(result).toMatchObject({ success: false, code: "invalid_transition", seed_id: null });
    expect(result.error).toMatch(/^1 of 3 seeds refused; first: seed 1:/);
    expect(result.details).toMatchObject({
      moved: 2,
      results: [
        { seed_id: 0, code: "ok" },
        { seed_id: 1, code: "invalid_transition" },
        { seed_id: 2, code: "ok" },
      ],
    });
    expect(transitions.map((t) => t.seed_id)).toEqual([0, 2]);
  });

  test("a command to every seed of a layer over 1,000 seeds lists only the seeds that refused, and how many lines it left out", () => {
    const h = host(1_500);
    h.apply(lifecycle(L, 7, "GERMINATED"));
    const { result, transitions } = h.apply(lifecycle(L, null, "GERMINATED"));
    expect(transitions).toHaveLength(1_499);
    expect(result).toMatchObject({ code: "invalid_transition", details: { moved: 1_499, omitted: 1_499 } });
    expect(result.details.results).toEqual([expect.objectContaining({ seed_id: 7, code: "invalid_transition" })]);
    const stop = h.apply(emergencyStop(L)).result;
    expect(stop.details).toMatchObject({ stopped: true, moved: 1_500, omitted: 500 });
    expect(stop.details.seeds).toHaveLength(1_000);
  });

  test("a single-seed result carries from_state and to_state", () => {
    const h = host();
    expect(h.apply(lifecycle(L, 2, "GERMINATED")).result).toMatchObject({ seed_id: 2, code: "ok", details: { from_state: "DORMANT", to_state: "GERMINATED" } });
  });

  test("a guard_failed result names the guard and the values it judged", () => {
    const h = host();
    placeSeed(h, 0, "TRAINING");
    h.tick(100);
    const { result } = h.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.5 } }));
    expect(result).toMatchObject({
      success: false,
      code: "guard_failed",
      details: { guard: "reconstruction_loss", values: { reconstruction_loss: 0.5, threshold: 0.01 } },
    });
    expect(result.error).toContain("reconstruction_loss 0.5");
  });

  test("target_state is matched case-insensitively", () => {
    const h = host();
    expect(h.apply(lifecycle(L, 0, "germinated")).result.code).toBe("ok");
    expect(h.seed(0).state).toBe("GERMINATED");
  });

  test.each([4, 17, -1])("unknown_seed for seed %i of a 4-seed layer; nothing moves", (seedId) => {
    const h = host(4);
    const before = h.table.snapshot();
    const { result, transitions } = h.apply(lifecycle(L, seedId, "GERMINATED"));
    // A seed id no message may carry (-1) is answered as "no seed": the answer itself must be a valid CommandResult.
    expect(result).toMatchObject({ success: false, code: "unknown_seed", seed_id: seedId >= 0 ? seedId : null });
    expect(result.error).toContain(`no seed ${seedId}`);
    expect(transitions).toEqual([]);
    expect(h.table.snapshot()).toEqual(before);
  });

  test("unknown_seed for a blueprint update to a seed the layer does not have", () => {
    expect(host(4).apply(blueprint(L, 4, "bp")).result.code).toBe("unknown_seed");
  });
});

describe("atomic batch: all or none", () => {
  test("a batch whose last command is invalid changes no seed and no state-table row", () => {
    const h = host(4);
    h.tick(3);
    const before = h.table.snapshot();
    const version = h.table.version;
    const b = batch([lifecycle(L, 0, "GERMINATED"), lifecycle(L, 1, "GERMINATED"), lifecycle(L, 2, "FOSSILIZED")]);
    const { result, transitions } = h.apply(b);
    expect(result).toMatchObject({ correlation_id: b.message_id, success: false, code: "invalid_transition", seed_id: null });
    expect(result.error).toMatch(/^atomic batch rejected, nothing applied: command 2 failed/);
    expect(result.details.results).toMatchObject([
      { index: 0, would_apply: true, applied: false },
      { index: 1, would_apply: true, applied: false },
      { index: 2, would_apply: false, applied: false, code: "invalid_transition" },
    ]);
    expect(transitions).toEqual([]);
    expect(states(h)).toEqual(["DORMANT", "DORMANT", "DORMANT", "DORMANT"]);
    expect(h.table.snapshot()).toEqual(before);
    expect(h.table.version).toBe(version);
  });

  test("a batch whose commands all pass applies every one, one transition each", () => {
    const h = host(4);
    const b = batch([lifecycle(L, 0, "GERMINATED"), lifecycle(L, 3, "GERMINATED"), blueprint(L, 1, "bp-x", "adaptive")]);
    const { result, transitions } = h.apply(b);
    expect(result).toMatchObject({ success: true, code: "ok" });
    expect(result.details.results).toMatchObject([
      { index: 0, applied: true, code: "ok" },
      { index: 1, applied: true, code: "ok" },
      { index: 2, applied: true, code: "ok" },
    ]);
    expect(transitions.map((t) => [t.seed_id, t.to_state])).toEqual([
      [0, "GERMINATED"],
      [3, "GERMINATED"],
    ]);
    expect(h.table.row(1)).toMatchObject({ blueprint: 0, strategy: "adaptive" });
  });

  test("an atomic batch that cancels a seed and then gives it a blueprint is rejected whole: the blueprint is judged against the state the batch leaves", () => {
    const h = host(2);
    placeSeed(h, 0, "GERMINATED");
    const b = batch([lifecycle(L, 0, "CANCELLED"), blueprint(L, 0, "bp-late")]);
    const { result, transitions } = h.apply(b);
    expect(result).toMatchObject({ success: false, code: "terminal_state" });
    expect(result.error).toMatch(/command 1 failed: seed 0 is CANCELLED/);
    expect(transitions).toEqual([]);
    expect(h.seed(0)).toMatchObject({ state: "GERMINATED", context: { blueprintId: null } });
  });

  test("a plain batch (not atomic, not stop_on_error) that cancels a seed and then gives it a blueprint: the blueprint line says terminal_state, not applied", () => {
    const h = host(2);
    placeSeed(h, 0, "GERMINATED");
    const { result } = h.apply(batch([lifecycle(L, 0, "CANCELLED"), blueprint(L, 0, "bp-late")], { atomic: false, stopOnError: false }));
    expect(result).toMatchObject({ success: false, code: "terminal_state" });
    expect(result.details.results).toMatchObject([
      { index: 0, applied: true, code: "ok" },
      { index: 1, applied: false, success: false, code: "terminal_state" },
    ]);
    expect(h.seed(0)).toMatchObject({ state: "CANCELLED", context: { blueprintId: null } });
  });

  test("a batch moving the same seed twice is judged step by step: GERMINATED then TRAINING applies", () => {
    const h = host(2);
    const { result, transitions } = h.apply(batch([lifecycle(L, 0, "GERMINATED"), lifecycle(L, 0, "TRAINING")]));
    expect(result.code).toBe("ok");
    expect(transitions.map((t) => `${t.from_state}->${t.to_state}`)).toEqual(["DORMANT->GERMINATED", "GERMINATED->TRAINING"]);
    expect(h.seed(0).state).toBe("TRAINING");
  });

  test("a batch moving the same seed to GERMINATED twice: the second is judged against GERMINATED, so nothing applies", () => {
    const h = host(2);
    const { result } = h.apply(batch([lifecycle(L, 0, "GERMINATED"), lifecycle(L, 0, "GERMINATED")]));
    expect(result.code).toBe("invalid_transition");
    expect(result.error).toContain("command 1 failed");
    expect(h.seed(0).state).toBe("DORMANT");
  });

  test("a validator's refusal rejects the whole batch with guard_failed", () => {
    const h = host(2);
    placeSeed(h, 0, "TRAINING");
    placeSeed(h, 1, "GERMINATED");
    const { result } = h.apply(batch([lifecycle(L, 1, "TRAINING"), lifecycle(L, 0, "GRAFTING")]));
    expect(result.code).toBe("guard_failed");
    expect(result.details.results).toMatchObject([{ would_apply: true }, { would_apply: false, code: "guard_failed" }]);
    expect(states(h)).toEqual(["TRAINING", "GERMINATED"]);
  });

  test("an unknown seed rejects the whole batch with unknown_seed", () => {
    const h = host(2);
    const { result } = h.apply(batch([lifecycle(L, 0, "GERMINATED"), lifecycle(L, 9, "GERMINATED")]));
    expect(result.code).toBe("unknown_seed");
    expect(h.seed(0).state).toBe("DORMANT");
  });
});

describe("non-atomic batch", () => {
  const mixed = () => [lifecycle(L, 0, "GERMINATED"), lifecycle(L, 1, "FOSSILIZED"), lifecycle(L, 2, "GERMINATED")];

  test("stop_on_error applies up to the failure and reports the rest skipped", () => {
    const h = host(3);
    const { result, transitions } = h.apply(batch(mixed(), { atomic: false, stopOnError: true }));
    expect(result).toMatchObject({ success: false, code: "invalid_transition" });
    expect(result.error).toMatch(/^command 1 failed/);
    expect(result.details.results).toMatchObject([
      { index: 0, seed_id: 0, applied: true, success: true, code: "ok" },
      { index: 1, seed_id: 1, applied: false, success: false, code: "invalid_transition" },
      { index: 2, seed_id: 2, applied: false, success: false, skipped: true },
    ]);
    expect((result.details.results as Array<{ error?: string }>)[2]!.error).toMatch(/skipped/);
    expect(transitions.map((t) => t.seed_id)).toEqual([0]);
    expect(states(h)).toEqual(["GERMINATED", "DORMANT", "DORMANT"]);
  });

  test("without stop_on_error every command is tried: the valid ones apply around the failure", () => {
    const h = host(3);
    const { result, transitions } = h.apply(batch(mixed(), { atomic: false, stopOnError: false }));
    expect(result.code).toBe("invalid_transition");
    expect(result.details.results).toMatchObject([
      { applied: true, code: "ok" },
      { applied: false, code: "invalid_transition" },
      { applied: true, code: "ok" },
    ]);
    expect(transitions.map((t) => t.seed_id)).toEqual([0, 2]);
    expect(states(h)).toEqual(["GERMINATED", "DORMANT", "GERMINATED"]);
  });
});

describe("emergency stop", () => {
  /** Seed i sits in the i-th lifecycle state. */
  const everyState = () => {
    const h = host(ONE_PER_STATE.length);
    ONE_PER_STATE.forEach((state, seedId) => placeSeed(h, seedId, state));
    return h;
  };

  test("cancels GERMINATED and TRAINING, rolls back GRAFTING..FINE_TUNING, leaves DORMANT and terminal seeds", () => {
    const h = everyState();
    const stop = emergencyStop(L, null, "loss exploded");
    const { result, transitions } = h.apply(stop);
    expect(result).toMatchObject({ correlation_id: stop.message_id, success: true, code: "ok" });
    expect(result.details).toEqual({
      stopped: true,
      seeds: [
        { seed_id: 1, from: "GERMINATED", to: "CANCELLED" },
        { seed_id: 2, from: "TRAINING", to: "CANCELLED" },
        { seed_id: 3, from: "GRAFTING", to: "ROLLED_BACK" },
        { seed_id: 4, from: "STABILIZATION", to: "ROLLED_BACK" },
        { seed_id: 5, from: "EVALUATING", to: "ROLLED_BACK" },
        { seed_id: 6, from: "FINE_TUNING", to: "ROLLED_BACK" },
      ],
    });
    expect(states(h)).toEqual([
      "DORMANT",
      "CANCELLED",
      "CANCELLED",
      "ROLLED_BACK",
      "ROLLED_BACK",
      "ROLLED_BACK",
      "ROLLED_BACK",
      "FOSSILIZED",
      "CULLED",
      "CANCELLED",
      "ROLLED_BACK",
    ]);
    expect(Array.from(h.table.state)).toEqual([0, 9, 9, 10, 10, 10, 10, 7, 8, 9, 10]);
    expect(Array.from(h.table.alpha)).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(transitions).toHaveLength(6);
    for (const t of transitions) expect(t).toMatchObject({ triggered_by: "system", reason: "emergency stop: loss exploded", correlation_id: stop.message_id });
    expect(h.isStopped).toBe(true);
  });

  test("an emergency stop for a seed the layer does not have is refused unknown_seed: a stop that stopped nothing never says ok", () => {
    for (const stopped of [false, true]) {
      const h = host(2);
      placeSeed(h, 1, "TRAINING");
      if (stopped) h.apply(emergencyStop(L));
      const { result, transitions } = h.apply(emergencyStop(L, 7));
      expect(result).toMatchObject({ success: false, code: "unknown_seed", seed_id: 7 });
      expect(result.error).toContain("no seed 7");
      expect(transitions).toEqual([]);
      expect(h.isStopped).toBe(stopped);
    }
  });

  test("a stop reason of 60,000 characters: the layer keeps and quotes at most MAX_REASON_LENGTH, and every answer is a valid message", () => {
    const h = host(3);
    placeSeed(h, 0, "TRAINING");
    const reason = "x".repeat(60_000);
    const stop = h.apply(emergencyStop(L, null, reason));
    expect(stop.result.code).toBe("ok");
    expect(stop.transitions[0]!.reason.length).toBeLessThanOrEqual(MAX_REASON_LENGTH);
    expect(h.record.stopReason!.length).toBe(MAX_REASON_LENGTH);
    // Refusals quote the reason: twice in a batch's lines.
    const refused = h.apply(batch([lifecycle(L, 1, "GERMINATED"), lifecycle(L, 2, "GERMINATED")], { atomic: false, stopOnError: false }));
    expect(refused.result.code).toBe("emergency_stopped");
    expect(refused.result.error!.length).toBeLessThan(2 * MAX_REASON_LENGTH);
  });

  test("a command's metrics reach the seed only for the names the validators read: 256 other names leave no trace", () => {
    const h = host(1);
    const metrics: Record<string, number> = { reconstruction_loss: 0.01 };
    for (let i = 0; i < 255; i++) metrics[`junk_${i}`] = i;
    const { transitions } = h.apply(lifecycle(L, 0, "GERMINATED", { metrics }));
    expect(h.seed(0).context.metrics).toEqual({ reconstruction_loss: 0.01 });
    expect(transitions[0]!.metrics_snapshot).toEqual({ reconstruction_loss: 0.01 });
  });

  test("a stopped layer refuses growth with emergency_stopped: lifecycle, blueprint and batch", () => {
    const h = host(2);
    h.apply(emergencyStop(L));
    for (const command of [lifecycle(L, 0, "GERMINATED"), lifecycle(L, null, "GERMINATED"), blueprint(L, 1, "bp"), batch([lifecycle(L, 1, "GERMINATED")])]) {
      const { result, transitions } = h.apply(command);
      expect(result.code, command.message_type).toBe("emergency_stopped");
      expect(result.error).toMatch(/emergency-stopped \(operator stop\).*send a resume first/);
      expect(transitions).toEqual([]);
    }
    expect(states(h)).toEqual(["DORMANT", "DORMANT"]);
    expect(h.seed(1).context.blueprintId).toBeNull();
  });

  test("a stopped layer still lets seeds be culled, cancelled and rolled back", () => {
    const h = host(4);
    placeSeed(h, 1, "TRAINING");
    placeSeed(h, 2, "GRAFTING");
    placeSeed(h, 3, "EVALUATING");
    // Snapshots from before the stop, restored into the stopped layer as a state store would.
    const kept = new Map([1, 2, 3].map((id) => [id, h.seed(id)] as const));
    h.apply(emergencyStop(L));
    h.restore(kept, h.record);
    expect(states(h)).toEqual(["DORMANT", "TRAINING", "GRAFTING", "EVALUATING"]);
    h.tick(100);
    expect(h.apply(lifecycle(L, 1, "CANCELLED")).result.code).toBe("ok");
    expect(h.apply(lifecycle(L, 2, "ROLLED_BACK")).result.code).toBe("ok");
    expect(h.apply(lifecycle(L, 3, "CULLED", { metrics: { performance_delta: -0.2 } })).result.code).toBe("ok");
    // Not growth, so the layer passes it on, and the seed answers for itself.
    expect(h.apply(lifecycle(L, 0, "CANCELLED")).result.code).toBe("invalid_transition");
    expect(states(h)).toEqual(["DORMANT", "CANCELLED", "ROLLED_BACK", "CULLED"]);
    expect(h.isStopped).toBe(true);
  });

  test("a second stop while stopped sweeps a seed restored meanwhile", () => {
    const h = host(2);
    placeSeed(h, 1, "FINE_TUNING");
    const kept = new Map([[1, h.seed(1)] as const]);
    h.apply(emergencyStop(L));
    h.restore(kept, h.record);
    const { result } = h.apply(emergencyStop(L));
    expect(result.details).toMatchObject({ stopped: true, seeds: [{ seed_id: 1, from: "FINE_TUNING", to: "ROLLED_BACK" }] });
  });

  test("resume lifts the stop: growth is accepted again", () => {
    const h = host(2);
    h.apply(emergencyStop(L));
    const r = resume(L);
    const { result } = h.apply(r);
    expect(result).toMatchObject({ correlation_id: r.message_id, code: "ok", details: { stopped: false } });
    expect(h.isStopped).toBe(false);
    expect(h.apply(lifecycle(L, 0, "GERMINATED")).result.code).toBe("ok");
  });

  test("a stop for one seed moves only that seed and leaves the layer open to growth", () => {
    const h = host(4);
    placeSeed(h, 2, "TRAINING");
    placeSeed(h, 3, "GRAFTING");
    const { result } = h.apply(emergencyStop(L, 2));
    expect(result).toMatchObject({ code: "ok", seed_id: 2, details: { stopped: false, seeds: [{ seed_id: 2, to: "CANCELLED" }] } });
    expect(states(h)).toEqual(["DORMANT", "DORMANT", "CANCELLED", "GRAFTING"]);
    expect(h.isStopped).toBe(false);
    expect(h.apply(lifecycle(L, 0, "GERMINATED")).result.code).toBe("ok");
  });
});

describe("the state table mirrors every transition", () => {
  test("state code and alpha follow a seed through its lifecycle", () => {
    const h = host(2);
    const walk: Array<[SeedState, number]> = [
      ["GERMINATED", 0],
      ["TRAINING", 0],
      ["GRAFTING", 0],
      ["STABILIZATION", 1],
      ["EVALUATING", 1],
      ["FINE_TUNING", 1],
      ["FOSSILIZED", 1],
    ];
    for (const [state, alpha] of walk) {
      expect(h.apply(lifecycle(L, 1, state, { force: true })).result.code).toBe("ok");
      expect(h.table.state[1]).toBe(CODE[state]);
      expect(h.table.alpha[1]).toBe(alpha);
      expect(h.table.row(1).state).toBe(state);
    }
    expect(h.table.row(0)).toEqual({ state: "DORMANT", blueprint: -1, epochsInState: 0, alpha: 0, strategy: "linear", errorCount: 0 });
  });

  test("the table hears each transition's seed id", () => {
    const h = host(3);
    const written: number[] = [];
    h.table.onWrite((seedId) => written.push(seedId));
    h.apply(lifecycle(L, null, "GERMINATED"));
    h.apply(lifecycle(L, 1, "FOSSILIZED"));
    expect(written).toEqual([0, 1, 2]);
  });

  test("epochs count up on tick in the table and the persisted seeds, and reset for the seed that moves", () => {
    const h = host(3);
    h.tick(7);
    h.tick();
    expect(Array.from(h.table.epochsInState)).toEqual([8, 8, 8]);
    expect([0, 1, 2].map((seed) => h.epochsInState(seed))).toEqual([8, 8, 8]);
    // A tick is one event for the layer: no seed snapshot changes until a seed moves.
    expect(h.seeds().map((s) => s.context.enteredAt)).toEqual([0, 0, 0]);
    h.apply(lifecycle(L, 1, "GERMINATED"));
    expect(Array.from(h.table.epochsInState)).toEqual([8, 0, 8]);
    expect(h.epochsInState(1)).toBe(0);
    expect(h.seed(1).context).toMatchObject({ enteredAt: 8, epoch: 8 });
  });

  test("ticks count toward the validators: a seed trained 100 epochs through the host may graft", () => {
    const h = host(1);
    placeSeed(h, 0, "TRAINING");
    h.tick(60);
    h.tick(40);
    h.reportMetrics(new Map([[0, { reconstruction_loss: 0.004 }]]));
    expect(h.seed(0).context.metrics).toEqual({ reconstruction_loss: 0.004 });
    expect(h.apply(lifecycle(L, 0, "GRAFTING")).result.code).toBe("ok");
  });

  // Regression: a BlueprintUpdateCommand was answered ok but neither the state table nor the
  // persisted seed heard of it (only transitions refreshed them).
  test("a blueprint update writes the blueprint index and strategy into the row and the persisted seed", () => {
    const h = host(3);
    const update = blueprint(L, 0, "bp-a", "momentum");
    expect(h.apply(update).result).toMatchObject({ correlation_id: update.message_id, code: "ok", seed_id: 0, details: { blueprint_id: "bp-a" } });
    h.apply(blueprint(L, 1, "bp-b", "drift_controlled"));
    h.apply(blueprint(L, 2, "bp-a"));
    expect(Array.from(h.table.blueprint)).toEqual([0, 1, 0]);
    expect(h.table.row(0).strategy).toBe("momentum");
    expect(h.table.row(1).strategy).toBe("drift_controlled");
    expect(h.seed(0).context).toMatchObject({ blueprintId: "bp-a", strategy: "momentum" });
  });

  test("the blueprint index comes from the data plane's registry when one is given", () => {
    const registry = new Map([["adapter-64", 12]]);
    const h = host(2, { blueprintIndex: (id) => (id === null ? -1 : (registry.get(id) ?? -2)) });
    h.apply(blueprint(L, 1, "adapter-64"));
    expect(Array.from(h.table.blueprint)).toEqual([-1, 12]);
  });

  test("a blueprint update to a terminal seed is refused with terminal_state and changes nothing", () => {
    const h = host(2);
    placeSeed(h, 0, "CULLED");
    const before = h.table.snapshot();
    const { result } = h.apply(blueprint(L, 0, "bp-late"));
    expect(result).toMatchObject({ success: false, code: "terminal_state", seed_id: 0 });
    expect(result.error).toContain("CULLED");
    expect(h.table.snapshot()).toEqual(before);
    expect(h.seed(0).context.blueprintId).toBeNull();
  });

  test("errors reported for a seed are counted in its row, kept across transitions, and read by the cull validator", () => {
    const h = host(2);
    placeSeed(h, 0, "EVALUATING");
    h.tick(30);
    for (let i = 0; i < 5; i++) h.reportError(0);
    expect(h.table.errorCount[0]).toBe(5);
    expect(h.table.errorCount[1]).toBe(0);
    expect(h.apply(lifecycle(L, 0, "CULLED")).result).toMatchObject({ code: "guard_failed", details: { guard: "cull_condition" } });
    h.reportError(0);
    expect(h.apply(lifecycle(L, 0, "CULLED")).result.code).toBe("ok");
    expect(h.table.row(0)).toMatchObject({ state: "CULLED", errorCount: 6 });
    expect(h.seed(0).context.errorCount).toBe(6);
  });

  test("the table given in the options is the one written", () => {
    const table = new StateTable(2);
    const h = host(2, { table });
    h.apply(lifecycle(L, 1, "GERMINATED"));
    expect(h.table).toBe(table);
    expect(table.state[1]).toBe(CODE.GERMINATED);
  });

  test("a table of the wrong size is refused", () => {
    expect(() => host(3, { table: new StateTable(2) })).toThrow(RangeError);
  });
});

describe("StateTransitionEvent", () => {
  test("carries the layer, seed, states, reason, metrics and the command's message id", () => {
    const h = host(2);
    placeSeed(h, 1, "TRAINING");
    h.tick(100);
    const command = lifecycle(L, 1, "GRAFTING", { metrics: { reconstruction_loss: 0.003 }, reason: "converged" });
    const { transitions } = h.apply(command);
    expect(transitions).toHaveLength(1);
    expect(transitions[0]).toMatchObject({
      message_type: "StateTransitionEvent",
      version: "1.0",
      correlation_id: command.message_id,
      layer_id: L,
      seed_id: 1,
      from_state: "TRAINING",
      to_state: "GRAFTING",
      reason: "converged",
      metrics_snapshot: { reconstruction_loss: 0.003 },
      triggered_by: "user",
      success: true,
    });
    expect(transitions[0]!.message_id).not.toBe(command.message_id);
  });

  test("triggered_by is policy for Tamiyo's commands, system for an emergency stop, user otherwise", () => {
    const h = host(3);
    expect(h.apply(lifecycle(L, 0, "GERMINATED", { source: "tamiyo" })).transitions[0]!.triggered_by).toBe("policy");
    expect(h.apply(lifecycle(L, 1, "GERMINATED", { source: "operator-cli" })).transitions[0]!.triggered_by).toBe("user");
    expect(h.apply(lifecycle(L, 2, "GERMINATED", { metadata: { triggered_by: "system" } })).transitions[0]!.triggered_by).toBe("system");
    expect(h.apply(emergencyStop(L)).transitions.map((t) => t.triggered_by)).toEqual(["system", "system", "system"]);
  });

  test("each command comes back with the transitions it caused, and a refused command with none", () => {
    const h = host(2);
    const heard = [lifecycle(L, null, "GERMINATED"), lifecycle(L, 0, "FOSSILIZED"), lifecycle(L, 0, "TRAINING")].flatMap((c) =>
      h.apply(c).transitions.map((t) => `${t.seed_id}:${t.from_state}->${t.to_state}`),
    );
    expect(heard).toEqual(["0:DORMANT->GERMINATED", "1:DORMANT->GERMINATED", "0:GERMINATED->TRAINING"]);
  });
});

describe("a deposed Tamiyo (metadata.leader_token)", () => {
  const led = (seedId: number, target: string, token: number) => lifecycle(L, seedId, target, { metadata: { leader_token: token } });

  test("once a layer saw a leader's token, an older one's commands are refused deposed_leader and change nothing; newer and unfenced ones apply", () => {
    const h = host(4);
    expect(h.apply(led(0, "GERMINATED", 2)).result).toMatchObject({ success: true, code: "ok" });
    expect(h.record.leaderToken).toBe(2);
    const stale = h.apply(led(1, "GERMINATED", 1));
    expect(stale.result).toMatchObject({ success: false, code: "deposed_leader" });
    expect(stale.result.error).toMatch(/leader token 1 is older than 2/);
    expect(stale.transitions).toEqual([]);
    expect(states(h)).toEqual(["GERMINATED", "DORMANT", "DORMANT", "DORMANT"]);
    expect(h.apply(led(1, "GERMINATED", 3)).result.code).toBe("ok");
    expect(h.apply(led(2, "GERMINATED", 2)).result.code).toBe("deposed_leader");
    // An operator's command (no token) is not a leader's: it applies.
    expect(h.apply(lifecycle(L, 2, "GERMINATED")).result.code).toBe("ok");
    expect(h.record.leaderToken).toBe(3);
  });

  test("told the newest leader's token (her lease's counter) before she speaks, the layer refuses an older leader at once, and keeps the token with its record", () => {
    const h = host(4);
    expect(h.apply(led(0, "GERMINATED", 1)).result.code).toBe("ok");
    h.noteLeader(2); // a new leader took the lease; she has sent this layer nothing yet
    expect(h.record.leaderToken).toBe(2);
    expect(h.apply(led(1, "GERMINATED", 1)).result.code).toBe("deposed_leader");
    expect(h.apply(led(1, "GERMINATED", 2)).result.code).toBe("ok");
    h.noteLeader(1); // never backwards
    expect(h.record.leaderToken).toBe(2);
  });

  test("a batch is fenced by its own token, and the token the layer saw comes back with its record", () => {
    const h = host(4);
    h.apply(led(0, "GERMINATED", 5));
    const old = batch([lifecycle(L, 1, "GERMINATED"), lifecycle(L, 2, "GERMINATED")], { atomic: true });
    const stale = h.apply({ ...old, metadata: { leader_token: 4 } });
    expect(stale.result.code).toBe("deposed_leader");
    expect(states(h)).toEqual(["GERMINATED", "DORMANT", "DORMANT", "DORMANT"]);
    const restored = new LayerHost({ layerId: L, numSeeds: 4 }, { seeds: new Map(), record: h.record });
    expect(restored.apply(led(3, "GERMINATED", 4)).result.code).toBe("deposed_leader");
    expect(restored.apply(led(3, "GERMINATED", 5)).result.code).toBe("ok");
  });
});
