import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { KasminaLayer, KasminaTrainer, type KasminaHooks } from "../../src/kasmina/index.ts";
import { randomInput, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

/**
 * The seeds' clock: onEpoch ticks, which the lifecycle's minimum dwell (DEFAULT_GUARDS.minEpochs)
 * counts. An epoch by default; every `tickEvery` steps when set.
 */
const twoLayers = () =>
  ["a", "b"].map((layerId) => {
    const layer = new KasminaLayer({ units: 4, numSeeds: 2, layerId, seed: 1 });
    layer.build([null, 3]);
    return layer;
  });

const recording = () => {
  const events: string[] = [];
  const hooks: KasminaHooks = {
    onEpoch: (layerId, n) => events.push(`tick ${layerId} ${n}`),
    onSeedMetrics: (layerId, window) => events.push(`metrics ${layerId} ${window.toStep}`),
  };
  return { events, hooks };
};

/** `steps` training steps through the trainer's custom-loop calls. */
const run = async (trainer: KasminaTrainer, layers: readonly KasminaLayer[], steps: number): Promise<void> => {
  const x = randomInput(2, 3);
  for (let i = 0; i < steps; i++) {
    trainer.beforeStep();
    tf.variableGrads(() => tf.addN(layers.map((l) => tf.sum(l.apply(x, { training: true }) as tf.Tensor))) as tf.Scalar);
    await trainer.afterStep();
  }
};

describe("ticks of a chosen size", () => {
  it("by default ticks once per epoch, from endEpoch, and never from a step", async () => {
    const layers = twoLayers();
    const { events, hooks } = recording();
    const trainer = new KasminaTrainer({ layers, hooks, telemetryEvery: 0 });
    await run(trainer, layers, 5);
    expect(events).toEqual([]);
    trainer.endEpoch();
    expect(events).toEqual(["tick a 1", "tick b 1"]);
  });

  it("with tickEvery N ticks each layer once every N steps, and endEpoch sends none", async () => {
    const layers = twoLayers();
    const { events, hooks } = recording();
    const trainer = new KasminaTrainer({ layers, hooks, telemetryEvery: 0, tickEvery: 3 });
    await run(trainer, layers, 2);
    expect(events).toEqual([]);
    await run(trainer, layers, 1);
    expect(events).toEqual(["tick a 1", "tick b 1"]);
    trainer.endEpoch();
    await run(trainer, layers, 4);
    expect(events).toEqual(["tick a 1", "tick b 1", "tick a 1", "tick b 1"]);
  });

  it("ticks after the window's metrics went out, so the guards a tick wakes judge fresh values", async () => {
    const layers = twoLayers();
    const { events, hooks } = recording();
    const trainer = new KasminaTrainer({ layers, hooks, telemetryEvery: 2, tickEvery: 2 });
    await run(trainer, layers, 2);
    expect(events).toEqual(["metrics a 2", "metrics b 2", "tick a 1", "tick b 1"]);
  });

  it("refuses a tick size that is not a whole number of steps", () => {
    const layers = twoLayers();
    expect(() => new KasminaTrainer({ layers, tickEvery: -1 })).toThrow(RangeError);
    expect(() => new KasminaTrainer({ layers, tickEvery: 1.5 })).toThrow(RangeError);
  });
});

describe("where performance_delta comes from", () => {
  /** One layer with seed 0 grafted (alpha 1, FINE_TUNING), one telemetry window; what the hooks heard. */
  const heard = async (performanceDelta?: "estimate" | "held_out") => {
    const layer = new KasminaLayer({ units: 4, numSeeds: 2, layerId: "a", seed: 1, blueprints: ["residual_mlp"] });
    layer.build([null, 3]);
    layer.table.write(0, { state: "FINE_TUNING", blueprint: 1, alpha: 1 });
    let columns: readonly string[] = [];
    let delta = Number.NaN;
    const hooks: KasminaHooks = {
      onTelemetry: (_layer, _step, _rows, c) => void (columns = c),
      onSeedMetrics: (_layer, _window, batch) => void (delta = batch.rows[batch.columns.indexOf("performance_delta")]!),
    };
    const trainer = new KasminaTrainer({ layers: [layer], hooks, telemetryEvery: 1, ...(performanceDelta ? { performanceDelta } : {}) });
    await run(trainer, [layer], 1);
    return { columns, delta };
  };

  it("by default, the batch's first-order estimate, as a guard metric and under its own name in telemetry", async () => {
    const { columns, delta } = await heard();
    expect(columns).toContain("performance_delta");
    expect(Number.isFinite(delta)).toBe(true);
  });

  it("held_out: left out of the guard metrics (the caller measures it) and renamed performance_delta_estimate in telemetry", async () => {
    const { columns, delta } = await heard("held_out");
    expect(columns).toContain("performance_delta_estimate");
    expect(columns).not.toContain("performance_delta");
    expect(Number.isNaN(delta)).toBe(true);
  });
});
