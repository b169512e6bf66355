import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { GRAFTING_STRATEGIES, stateCode, type SeedState } from "../../machines/lifecycle.ts";
import { advanceAlphas, DEFAULT_GRAFTING, GRAFTING, type GraftInput } from "../../src/kasmina/grafting.ts";
import { StateTable } from "../../src/kasmina/state-table.ts";

const config = DEFAULT_GRAFTING;
const calm = { drift: 0, variance: 0, performanceDelta: 0 };
const input = (over: Partial<GraftInput>): GraftInput => ({ step: 1, rampSteps: 50, alpha: 0, ...calm, ...over });

/** Runs a recurrent strategy for `steps` steps from alpha 0 with fixed signals; returns every alpha. */
const ramp = (name: keyof typeof GRAFTING, steps: number, signals: Partial<GraftInput> = {}, rampSteps = 50): number[] => {
  const alphas: number[] = [];
  let alpha = 0;
  for (let step = 1; step <= steps; step++) {
    alpha = GRAFTING[name](input({ ...signals, step, rampSteps, alpha }), config);
    alphas.push(alpha);
  }
  return alphas;
};

const nonDecreasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x >= xs[i - 1]!);

describe("grafting strategies", () => {
  test.prop([fc.constantFrom(...GRAFTING_STRATEGIES), fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 200 }), fc.double({ min: -5, max: 5, noNaN: false }), fc.double({ min: 0, max: 1 })])(
    "always answer an alpha in [0, 1]",
    (name, step, rampSteps, signal, alpha) => {
      const a = GRAFTING[name]({ step, rampSteps, alpha, drift: signal, variance: signal, performanceDelta: signal }, config);
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThanOrEqual(1);
    },
  );

  test.prop([fc.integer({ min: 1, max: 300 })])("linear and momentum climb monotonically and reach exactly 1 at the end of the ramp", (rampSteps) => {
    for (const name of ["linear", "momentum"] as const) {
      const alphas = ramp(name, rampSteps + 5, {}, rampSteps);
      expect(nonDecreasing(alphas)).toBe(true);
      expect(alphas[rampSteps - 1]).toBe(1);
      expect(alphas[rampSteps - 2] ?? 0).toBeLessThan(1);
    }
  });

  it("linear is step / ramp", () => {
    expect(ramp("linear", 50).slice(0, 3)).toEqual([0.02, 0.04, 0.06]);
  });

  it("momentum starts gentler than linear, then catches up", () => {
    const m = ramp("momentum", 50);
    const l = ramp("linear", 50);
    expect(m[4]!).toBeLessThan(l[4]!);
    expect(m[49]).toBe(1);
  });

  it("drift_controlled advances while drift is low, holds while it is high, and backs off while it is very high", () => {
    expect(ramp("drift_controlled", 50, { drift: 0.01 })[49]).toBe(1);
    const held = GRAFTING.drift_controlled(input({ alpha: 0.4, drift: 0.15 }), config);
    expect(held).toBe(0.4);
    const backedOff = GRAFTING.drift_controlled(input({ alpha: 0.4, drift: 0.5 }), config);
    expect(backedOff).toBeLessThan(0.4);
    expect(GRAFTING.drift_controlled(input({ alpha: 0.4, drift: Number.NaN }), config)).toBeGreaterThan(0.4);
  });

  it("adaptive speeds up when the graft helps, slows down when it hurts, and never stops", () => {
    const helping = ramp("adaptive", 30, { performanceDelta: 0.05 });
    const hurting = ramp("adaptive", 30, { performanceDelta: -0.05 });
    const linear = ramp("linear", 30);
    expect(helping[9]!).toBeGreaterThan(linear[9]!);
    expect(hurting[9]!).toBeLessThan(linear[9]!);
    expect(nonDecreasing(hurting)).toBe(true);
    expect(hurting[29]!).toBeGreaterThan(hurting[0]!);
    expect(ramp("adaptive", 300, { performanceDelta: -1 })[299]).toBe(1);
  });

  it("stability waits for low variance, and for any variance at all", () => {
    expect(ramp("stability", 60, { variance: 0.5 }).every((a) => a === 0)).toBe(true);
    expect(ramp("stability", 60, { variance: Number.NaN }).every((a) => a === 0)).toBe(true);
    expect(ramp("stability", 50, { variance: 0.01 })[49]).toBe(1);
  });
});

describe("advanceAlphas", () => {
  const columns = (states: SeedState[], strategies: number[], alpha: number[], steps: number[]) => ({
    state: Uint8Array.from(states.map(stateCode)),
    strategy: Uint8Array.from(strategies),
    alpha: Float32Array.from(alpha),
    steps: Uint32Array.from(steps),
    drift: new Float32Array(states.length).fill(0.5),
    variance: new Float32Array(states.length),
    performanceDelta: new Float32Array(states.length),
  });

  it("moves every grafting seed by its own strategy and pins every other seed to its state's alpha, in one call", () => {
    const linear = GRAFTING_STRATEGIES.indexOf("linear");
    const drift = GRAFTING_STRATEGIES.indexOf("drift_controlled");
    const cols = columns(["GRAFTING", "GRAFTING", "DORMANT", "FOSSILIZED", "ROLLED_BACK", "GRAFTING"], [linear, drift, 0, 0, 0, linear], [0.5, 0.5, 0.7, 0.2, 1, 0.9], [24, 24, 3, 0, 0, 0]);
    const next = advanceAlphas(cols);
    expect(next[0]).toBeCloseTo(25 / 50, 6);
    expect(next[1]).toBeCloseTo(0.5 - 1 / 50, 6); // drift 0.5 is above twice the limit: back off
    expect(Array.from(next.slice(2, 5))).toEqual([0, 1, 0]);
    expect(next[5]).toBeCloseTo(1 / 50, 6); // just entered GRAFTING: the ramp starts from 0, whatever the table held
    expect(Array.from(cols.steps)).toEqual([25, 25, 0, 0, 0, 1]);
  });
});

describe("StateTable.setAlphas", () => {
  it("writes the whole alpha column as one version, tells no row listener, and is a no-op when nothing changed", () => {
    const table = new StateTable(3);
    const heard: number[] = [];
    table.onWrite((seed) => heard.push(seed));
    const version = table.version;
    expect(table.setAlphas([0.5, 0, 1])).toBe(true);
    expect(table.version).toBe(version + 1);
    expect(Array.from(table.alpha)).toEqual([0.5, 0, 1]);
    expect(table.setAlphas(Float32Array.from([0.5, 0, 1]))).toBe(false);
    expect(table.version).toBe(version + 1);
    expect(heard).toEqual([]);
    expect(() => table.setAlphas([1])).toThrow(RangeError);
  });
});
