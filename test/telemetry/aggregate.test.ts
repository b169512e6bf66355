import { Clock, Effect, Exit, Scope } from "effect";
import { TestClock } from "effect/testing";
import { describe, expect, it } from "vitest";
import * as P from "../../src/protocol/index.ts";
import { makeTelemetryAggregator, TelemetryAggregator, type LayerWindowSummary, type TelemetryAggregatorOptions } from "../../src/telemetry/aggregate.ts";
import { frameOf, seeded } from "./frames.ts";

/** An aggregator on a clock the test sets by hand. */
const at = (t0: number, options: Omit<TelemetryAggregatorOptions, "now"> = {}) => {
  const clock = { t: t0 };
  const aggregator = new TelemetryAggregator({ ...options, now: () => clock.t });
  return { clock, aggregator };
};

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("the telemetry aggregator", () => {
  it("summarises a layer's window: count, mean, min, max, p95 of every metric, NaN cells left out, each seed counted once", () => {
    const { clock, aggregator } = at(10_000);
    aggregator.add(frameOf("L1", [0, 1, 2], { loss: [1, 2, Number.NaN], alpha: [0.5, Number.NaN, Number.NaN] }));
    aggregator.add(frameOf("L1", [2, 3], { loss: [3, 4] }));
    aggregator.add(frameOf("L1", [], {}));
    clock.t = 11_000;
    expect(aggregator.flush()).toEqual([
      {
        layerId: "L1",
        windowStart: 10_000,
        windowEnd: 11_000,
        frames: 3,
        seedsSeen: 4,
        metrics: {
          loss: { count: 4, mean: 2.5, min: 1, max: 4, p95: 4 },
          alpha: { count: 1, mean: 0.5, min: 0.5, max: 0.5, p95: 0.5 },
        },
      },
    ]);
  });

  it("takes p95 by nearest rank: of 1..20 the 19th, of 1..100 the 95th", () => {
    const { clock, aggregator } = at(0);
    aggregator.add(frameOf("A", range(1, 20), { v: range(1, 20) }));
    aggregator.add(frameOf("B", range(1, 100), { v: range(1, 100).reverse() }));
    clock.t = 1_000;
    expect(aggregator.flush().map((s) => [s.layerId, s.metrics.v!.p95])).toEqual([
      ["A", 19],
      ["B", 95],
    ]);
  });

  it("closes a window only once its end has passed, on windows aligned to multiples of windowMs", () => {
    const { clock, aggregator } = at(1_250, { windowMs: 500 });
    aggregator.add(frameOf("L1", [0], { v: [1] }));
    expect(aggregator.flush(1_499)).toEqual([]);
    const [summary] = aggregator.flush(1_500);
    expect(summary).toMatchObject({ windowStart: 1_000, windowEnd: 1_500, frames: 1 });
    clock.t = 1_600;
    expect(aggregator.flush()).toEqual([]);
  });

  it("closes a layer's window when a frame of a later one comes, each window returned by one flush only", () => {
    const { clock, aggregator } = at(0);
    aggregator.add(frameOf("L1", [0], { v: [1] }));
    clock.t = 1_200;
    aggregator.add(frameOf("L1", [0], { v: [5] }));
    aggregator.add(frameOf("L2", [0], { v: [7] }));
    const first = aggregator.flush(1_500);
    expect(first.map((s) => [s.layerId, s.windowStart, s.metrics.v!.mean])).toEqual([["L1", 0, 1]]);
    expect(aggregator.flush(2_000).map((s) => [s.layerId, s.windowStart, s.metrics.v!.mean])).toEqual([
      ["L1", 1_000, 5],
      ["L2", 1_000, 7],
    ]);
    expect(aggregator.flush(5_000)).toEqual([]);
  });

  it("hands each closed window to onWindow once, and keeps none of them for flush", () => {
    const seen: LayerWindowSummary[] = [];
    const { clock, aggregator } = at(0, { onWindow: (s) => seen.push(s) });
    aggregator.add(frameOf("L1", [0], { v: [1] }));
    clock.t = 1_000;
    aggregator.add(frameOf("L1", [0], { v: [2] }));
    expect(seen.map((s) => s.windowStart)).toEqual([0]);
    expect(aggregator.flush(2_000)).toEqual([]);
    expect(seen.map((s) => s.windowStart)).toEqual([0, 1_000]);
  });

  it("keeps at most maxSamples values a metric a window: the p95 of a uniform sample, count, mean, min and max exact", () => {
    // A random source that never picks a kept slot: only the first maxSamples values are held.
    const held = at(0, { maxSamples: 100, random: () => 0.999_999 });
    held.aggregator.add(frameOf("L1", range(1, 10_000), { v: range(1, 10_000) }));
    expect(held.aggregator.flush(1_000)[0]!.metrics.v).toEqual({ count: 10_000, mean: 5_000.5, min: 1, max: 10_000, p95: 95 });

    const sampled = at(0, { maxSamples: 1_000, random: seeded(7) });
    sampled.aggregator.add(frameOf("L1", range(1, 100_000), { v: range(1, 100_000) }));
    const v = sampled.aggregator.flush(1_000)[0]!.metrics.v!;
    expect(v).toMatchObject({ count: 100_000, mean: 50_000.5, min: 1, max: 100_000 });
    expect(Math.abs(v.p95 - 95_000)).toBeLessThan(2_000);
  });

  it("keeps the latest value of every metric of every seed, per layer, a metric not reported again keeping its last", () => {
    const { clock, aggregator } = at(0);
    aggregator.add(frameOf("L1", [0, 1], { loss: [1, 2], alpha: [0.1, Number.NaN] }));
    clock.t = 5_000;
    aggregator.add(frameOf("L1", [0], { loss: [0.5] }));
    aggregator.add(frameOf("L2", [0], { loss: [9] }));
    expect(Object.fromEntries(aggregator.latest("L1"))).toEqual({ 0: { loss: 0.5, alpha: 0.1 }, 1: { loss: 2 } });
    expect(Object.fromEntries(aggregator.latest("L2"))).toEqual({ 0: { loss: 9 } });
    expect(aggregator.latest("L3").size).toBe(0);
  });

  it("takes what the telemetry consumer hands over: frames, and snapshots as one seed record each", () => {
    const { aggregator } = at(0);
    const snapshot = P.seedMetricsSnapshot({ layer_id: "L1", seed_id: 4, lifecycle_state: "TRAINING", metrics: { loss: 3 } });
    aggregator.addContent({ frames: [frameOf("L1", [0], { loss: [1] })], snapshots: [snapshot] });
    expect(aggregator.flush(1_000)[0]).toMatchObject({ frames: 2, seedsSeen: 2, metrics: { loss: { count: 2, mean: 2 } } });
    expect(aggregator.latest("L1").get(4)).toEqual({ loss: 3 });
  });

  it("made as an Effect, cuts windows on that Effect's Clock", async () => {
    const scope = await Effect.runPromise(Scope.make());
    try {
      const clock = await Effect.runPromise(Scope.provide(scope)(TestClock.make({ warningDelay: "1 hour" })));
      await Effect.runPromise(clock.setTime(3_000));
      const aggregator = await Effect.runPromise(Effect.provideService(makeTelemetryAggregator(), Clock.Clock, clock));
      aggregator.add(frameOf("L1", [0], { v: [1] }));
      await Effect.runPromise(clock.adjust(999));
      expect(aggregator.flush()).toEqual([]);
      await Effect.runPromise(clock.adjust(1));
      expect(aggregator.flush().map((s) => [s.windowStart, s.windowEnd])).toEqual([[3_000, 4_000]]);
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void));
    }
  });
});

