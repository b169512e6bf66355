/**
 * LayerHost.applyAll (a run of commands as one step of the layer, what the bridge uses) against
 * `apply` one command at a time: for any sequence of lifecycle transitions, blueprint updates,
 * stops and resumes, the two hosts give the same answers, the same transition events, the same
 * seeds and the same state table.
 */
import { describe, expect } from "vitest";
import { fc, test } from "@fast-check/vitest";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import type { Command, CommandResult, StateTransitionEvent } from "../../src/protocol/messages.ts";
import { STATES_BY_HAND } from "../support/lifecycle-by-hand.ts";
import { blueprint, emergencyStop, lifecycle, resume } from "../runtime/commands.ts";

const L = "layer";
const NUM_SEEDS = 3;
const NOW = 1_700_000_000_000;

const seedArb = fc.oneof(fc.integer({ min: 0, max: NUM_SEEDS }), fc.constant(null)); // NUM_SEEDS itself: an unknown seed
const commandArb: fc.Arbitrary<() => Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ seed: seedArb, target: fc.constantFrom(...STATES_BY_HAND), force: fc.boolean(), loss: fc.constantFrom(0.001, 0.5) }).map(({ seed, target, force, loss }) => () => lifecycle(L, seed, target, { force, metrics: { reconstruction_loss: loss } })) },
  { weight: 2, arbitrary: fc.record({ seed: fc.integer({ min: 0, max: NUM_SEEDS }), bp: fc.constantFrom("bp-a", "bp-b") }).map(({ seed, bp }) => () => blueprint(L, seed, bp)) },
  { weight: 1, arbitrary: fc.option(fc.integer({ min: 0, max: NUM_SEEDS }), { nil: null }).map((seed) => () => emergencyStop(L, seed)) },
  { weight: 1, arbitrary: fc.constant(() => resume(L)) },
);

/** What must agree: everything but the ids and times each message is given. */
const resultView = (r: CommandResult) => ({ correlation_id: r.correlation_id, seed_id: r.seed_id, code: r.code, error: r.error, details: r.details });
const transitionView = (t: StateTransitionEvent) => ({ correlation_id: t.correlation_id, seed_id: t.seed_id, from: t.from_state, to: t.to_state, reason: t.reason, metrics: t.metrics_snapshot });

describe("LayerHost.applyAll", () => {
  test.prop([fc.array(commandArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 200 })], { numRuns: 300 })(
    "answers, events, seeds and table equal apply one by one",
    (makers, epochs) => {
      const commands = makers.map((make) => make());
      const one = new LayerHost({ layerId: L, numSeeds: NUM_SEEDS });
      const all = new LayerHost({ layerId: L, numSeeds: NUM_SEEDS });
      one.tick(epochs);
      all.tick(epochs);
      const each = commands.map((c) => one.apply(c, NOW));
      const together = all.applyAll(commands, NOW);
      expect(together.answers.length).toBe(commands.length);
      together.answers.forEach((a, i) => {
        expect("failed" in a).toBe(false);
        if ("failed" in a) return;
        expect(resultView(a.result)).toEqual(resultView(each[i]!.result));
        expect(a.transitions.map(transitionView)).toEqual(each[i]!.transitions.map(transitionView));
      });
      expect(all.seeds()).toEqual(one.seeds());
      expect(all.record).toEqual(one.record);
      expect(all.table.snapshot()).toEqual(one.table.snapshot());
      const changedOne = new Set(each.flatMap((a) => [...a.changed]));
      expect([...together.changed].sort()).toEqual([...changedOne].sort());
      one.stop();
      all.stop();
    },
  );
});
