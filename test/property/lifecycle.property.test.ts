/**
 * Random command sequences against an independent model of the lifecycle.
 *
 * The model below is written from the text, not imported from machines/: the hand-written
 * lifecycle of test/support, its own validators, its own emergency-stop rule. If the machines and the model ever
 * disagree, one of them is wrong, and fast-check shrinks the sequence to the shortest proof.
 */
import { randomUUID } from "node:crypto";
import { describe, expect } from "vitest";
import { fc, test } from "@fast-check/vitest";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import type { Command as HostedCommand } from "../../src/protocol/messages.ts";
import type { SeedState } from "../../machines/lifecycle.ts";
import { EDGES_BY_HAND, MIN_EPOCHS_BY_HAND, STATES_BY_HAND, TERMINALS_BY_HAND } from "../support/lifecycle-by-hand.ts";

// At least 1000 in CI (the issue asks for it); raise locally with ESPER_PROPERTY_RUNS for a deeper search.
const RUNS = Math.max(1000, Number(process.env.ESPER_PROPERTY_RUNS ?? 1000));
const NUM_SEEDS = 3;

// ---- the model --------------------------------------------------------------------------------

const STATES = STATES_BY_HAND;
type State = SeedState;

const MODEL_EDGES = Object.fromEntries(STATES.map((from) => [from, EDGES_BY_HAND.filter(([f]) => f === from).map(([, to]) => to)])) as Record<State, State[]>;
const TERMINAL: readonly State[] = TERMINALS_BY_HAND;
const MIN_EPOCHS = MIN_EPOCHS_BY_HAND;
const GROWTH: State[] = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"];
const ACTIVE: State[] = ["GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"];

type Metrics = Record<string, number>;
interface ModelSeed {
  state: State;
  epochs: number;
  metrics: Metrics;
}
interface Model {
  seeds: ModelSeed[];
  stopped: boolean;
}

const validatorsPass = (seed: ModelSeed, to: State, extra: Metrics): boolean => {
  const m = { ...seed.metrics, ...extra };
  if (to !== "ROLLED_BACK" && seed.epochs < (MIN_EPOCHS[seed.state] ?? 0)) return false;
  const has = (k: string) => typeof m[k] === "number";
  switch (`${seed.state}->${to}`) {
    case "TRAINING->GRAFTING":
      return has("reconstruction_loss") && m.reconstruction_loss! <= 0.01;
    case "EVALUATING->FINE_TUNING":
      return has("performance_delta") && m.performance_delta! > 0 && has("stability_score") && m.stability_score! >= 0.8;
    case "EVALUATING->CULLED":
      return (has("performance_delta") && m.performance_delta! < -0.05) || (has("error_rate") && m.error_rate! > 0.1) || (m.error_count ?? 0) > 5;
    case "FINE_TUNING->FOSSILIZED":
      return has("total_improvement") && m.total_improvement! >= 0.01 && has("final_stability") && m.final_stability! >= 0.95;
    default:
      return true;
  }
};

/** The code the model expects for moving `seed` to `to`. */
const expectedCode = (model: Model, seed: ModelSeed, to: State, force: boolean, extra: Metrics): string => {
  if (model.stopped && GROWTH.includes(to)) return "emergency_stopped";
  if (TERMINAL.includes(seed.state)) return "terminal_state";
  if (!MODEL_EDGES[seed.state].includes(to)) return "invalid_transition";
  if (!force && !validatorsPass(seed, to, extra)) return "guard_failed";
  return "ok";
};

const move = (seed: ModelSeed, to: State, extra: Metrics) => {
  seed.state = to;
  seed.epochs = 0;
  seed.metrics = { ...seed.metrics, ...extra };
};

// ---- the commands -----------------------------------------------------------------------------

const metricsArb = fc.record(
  {
    reconstruction_loss: fc.constantFrom(0.001, 0.01, 0.05),
    performance_delta: fc.constantFrom(-0.1, -0.05, 0, 0.02),
    stability_score: fc.constantFrom(0.5, 0.8, 0.9),
    error_rate: fc.constantFrom(0.05, 0.1, 0.2),
    error_count: fc.constantFrom(0, 5, 6),
    total_improvement: fc.constantFrom(0.005, 0.01, 0.02),
    final_stability: fc.constantFrom(0.9, 0.95, 0.97),
  },
  { requiredKeys: [] },
);

type Step =
  | { kind: "transition"; seed: number | null; to: State; force: boolean; metrics: Metrics }
  /** Move a seed along one of its model edges (picked by `edge`), so sequences reach deep states. */
  | { kind: "advance"; seed: number; edge: number; force: boolean; metrics: Metrics }
  | { kind: "tick"; epochs: number }
  | { kind: "metrics"; seed: number; metrics: Metrics }
  | { kind: "stop" }
  | { kind: "resume" }
  | { kind: "batch"; items: Array<{ seed: number; to: State; force: boolean; metrics: Metrics }> };

const seedArb = fc.integer({ min: 0, max: NUM_SEEDS - 1 });
const stateArb = fc.constantFrom(...STATES);
// Targets biased toward the next edge, so sequences get deep into the lifecycle.
const transitionArb = fc.record({
  kind: fc.constant("transition" as const),
  seed: fc.oneof({ weight: 5, arbitrary: seedArb }, { weight: 1, arbitrary: fc.constant(null) }),
  to: stateArb,
  force: fc.boolean(),
  metrics: metricsArb,
});
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: transitionArb },
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant("advance" as const), seed: seedArb, edge: fc.nat(2), force: fc.boolean(), metrics: metricsArb }),
  },
  // Epoch counts straddle every minimum (20, 30, 50, 100), so off-by-some validators get caught.
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("tick" as const), epochs: fc.constantFrom(1, 9, 19, 20, 29, 30, 49, 50, 99, 100, 120) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("metrics" as const), seed: seedArb, metrics: metricsArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: "stop" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "resume" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      items: fc.array(fc.record({ seed: seedArb, to: stateArb, force: fc.boolean(), metrics: metricsArb }), { minLength: 1, maxLength: 3 }),
    }),
  },
);

const lifecycle = (seed: number | null, to: State, force: boolean, metrics: Metrics) =>
  ({
    message_type: "LifecycleTransitionCommand",
    message_id: randomUUID(),
    timestamp: 0,
    source: "property",
    version: "1.0",
    layer_id: "L",
    seed_id: seed,
    target_state: to,
    parameters: { metrics },
    priority: "normal",
    timeout_ms: 5000,
    force,
    reason: "",
  }) as const;

const command = (c: object) => c as unknown as HostedCommand;

// ---- the properties ---------------------------------------------------------------------------

const freshModel = (): Model => ({
  seeds: Array.from({ length: NUM_SEEDS }, () => ({ state: "DORMANT" as State, epochs: 0, metrics: {} })),
  stopped: false,
});

/** The actors and the state table agree, and agree with the model. */
const expectAgreement = (host: LayerHost, model: Model) => {
  for (let i = 0; i < NUM_SEEDS; i++) {
    const live = host.seed(i);
    expect(live.state).toBe(model.seeds[i]!.state);
    expect(host.epochsInState(i)).toBe(model.seeds[i]!.epochs);
    const row = host.table.row(i);
    expect(row.state).toBe(live.state);
    expect(row.epochsInState).toBe(host.epochsInState(i));
    expect(row.alpha).toBeCloseTo(live.context.alpha, 6);
    expect(row.errorCount).toBe(live.context.errorCount);
  }
};

describe("seed lifecycle against an independent model", () => {
  // Each seed first walks (forced) a random distance along the main path, so runs start deep in
  // the lifecycle as often as at DORMANT, and the validators of late edges get exercised.
  const MAIN_PATH: State[] = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"];
  const depthsArb = fc.array(fc.integer({ min: 0, max: MAIN_PATH.length }), { minLength: NUM_SEEDS, maxLength: NUM_SEEDS });

  test.prop([depthsArb, fc.array(stepArb, { minLength: 1, maxLength: 40 })], { numRuns: RUNS })(
    "a command is accepted iff its edge exists and (force or the validators hold); terminal states absorb; epochs reset; table = snapshots",
    (depths, steps) => {
      const host = new LayerHost({ layerId: "L", numSeeds: NUM_SEEDS });
      const model = freshModel();
      try {
        depths.forEach((depth, seed) => {
          for (const to of MAIN_PATH.slice(0, depth)) {
            expect(host.apply(command(lifecycle(seed, to, true, {}))).result.code).toBe("ok");
            move(model.seeds[seed]!, to, {});
          }
        });
        for (const step of steps) {
          const concrete: Step =
            step.kind === "advance"
              ? (() => {
                  const edges = MODEL_EDGES[model.seeds[step.seed]!.state];
                  const to = edges.length > 0 ? edges[step.edge % edges.length]! : "GERMINATED";
                  return { kind: "transition", seed: step.seed, to, force: step.force, metrics: step.metrics };
                })()
              : step;
          switch (concrete.kind) {
            case "transition": {
              const step = concrete;
              const { result, transitions } = host.apply(command(lifecycle(step.seed, step.to, step.force, step.metrics)));
              const targets = step.seed === null ? model.seeds.map((_, i) => i) : [step.seed];
              const codes = targets.map((i) => expectedCode(model, model.seeds[i]!, step.to, step.force, step.metrics));
              const stoppedRefusal = model.stopped && GROWTH.includes(step.to);
              const firstFailure = codes.find((c) => c !== "ok");
              expect(result.code).toBe(firstFailure ?? "ok");
              expect(result.success).toBe(firstFailure === undefined);
              const moved = stoppedRefusal ? [] : targets.filter((_, k) => codes[k] === "ok");
              expect(transitions.map((t) => t.seed_id)).toEqual(moved);
              for (const i of moved) move(model.seeds[i]!, step.to, step.metrics);
              break;
            }
            case "tick": {
              const step = concrete;
              host.tick(step.epochs);
              for (const s of model.seeds) s.epochs += step.epochs;
              break;
            }
            case "metrics": {
              const step = concrete;
              host.reportMetrics(new Map([[step.seed, step.metrics]]));
              model.seeds[step.seed]!.metrics = { ...model.seeds[step.seed]!.metrics, ...step.metrics };
              break;
            }
            case "stop": {
              const { result } = host.apply(command({ message_type: "EmergencyStopCommand", message_id: randomUUID(), source: "property", layer_id: "L", seed_id: null, reason: "property" }));
              expect(result.code).toBe("ok");
              for (const s of model.seeds) {
                if (s.state === "GERMINATED" || s.state === "TRAINING") move(s, "CANCELLED", {});
                else if (ACTIVE.includes(s.state)) move(s, "ROLLED_BACK", {});
              }
              model.stopped = true;
              // After an emergency stop no seed is left growing.
              for (let i = 0; i < NUM_SEEDS; i++) {
                expect(["TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"]).not.toContain(host.seed(i).state);
              }
              break;
            }
            case "resume": {
              const { result } = host.apply(command({ message_type: "ResumeCommand", message_id: randomUUID(), source: "property", layer_id: "L" }));
              expect(result.code).toBe("ok");
              model.stopped = false;
              break;
            }
            case "batch": {
              const step = concrete;
              const before = Array.from({ length: NUM_SEEDS }, (_, i) => host.seed(i));
              const tableBefore = host.table.snapshot();
              const { result } = host.apply(
                command({
                  message_type: "BatchCommand",
                  message_id: randomUUID(),
                  source: "property",
                  commands: step.items.map((it) => lifecycle(it.seed, it.to, it.force, it.metrics)),
                  atomic: true,
                  stop_on_error: true,
                }),
              );
              // Judge the batch step by step on a scratch copy of the model.
              const scratch: Model = { stopped: model.stopped, seeds: model.seeds.map((s) => ({ ...s, metrics: { ...s.metrics } })) };
              const codes = step.items.map((it) => {
                const code = expectedCode(scratch, scratch.seeds[it.seed]!, it.to, it.force, it.metrics);
                if (code === "ok") move(scratch.seeds[it.seed]!, it.to, it.metrics);
                return code;
              });
              const failed = codes.find((c) => c !== "ok");
              expect(result.code).toBe(failed ?? "ok");
              if (failed) {
                // A rejected atomic batch changes no seed.
                for (let i = 0; i < NUM_SEEDS; i++) expect(host.seed(i)).toEqual(before[i]);
                expect(host.table.snapshot()).toEqual(tableBefore);
              } else {
                model.seeds = scratch.seeds;
              }
              break;
            }
          }
          expectAgreement(host, model);
        }
      } finally {
        host.stop();
      }
    },
  );

  test.prop([fc.array(transitionArb, { minLength: 1, maxLength: 30 }), fc.constantFrom(...TERMINAL)], { numRuns: RUNS })(
    "a terminal seed accepts nothing, forced or not",
    (steps, terminal) => {
      const host = new LayerHost({ layerId: "L", numSeeds: NUM_SEEDS });
      try {
        // Walk seed 0 into the terminal state along a real path, forced.
        const path: Record<State, State[]> = {
          FOSSILIZED: ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"],
          CULLED: ["GERMINATED", "TRAINING", "CULLED"],
          CANCELLED: ["GERMINATED", "CANCELLED"],
          ROLLED_BACK: ["GERMINATED", "TRAINING", "GRAFTING", "ROLLED_BACK"],
        } as Record<State, State[]>;
        for (const to of path[terminal]) expect(host.apply(command(lifecycle(0, to, true, {}))).result.code).toBe("ok");
        for (const step of steps) {
          const { result, transitions } = host.apply(command(lifecycle(0, step.to, step.force, step.metrics)));
          expect(result.code).toBe("terminal_state");
          expect(transitions).toEqual([]);
          expect(host.seed(0).state).toBe(terminal);
        }
      } finally {
        host.stop();
      }
    },
  );
});
