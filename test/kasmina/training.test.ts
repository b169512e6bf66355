import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { beforeAll, describe, expect, it } from "vitest";
import {
  blueprintIndex,
  KasminaLayer,
  KasminaTrainer,
  SEED_METRIC_COLUMNS,
  seedMetric,
  TELEMETRY_COLUMNS,
  type MetricsWindow,
  type SeedMetricsBatch,
} from "../../src/kasmina/index.ts";
import { useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

const task = () => {
  const x = tf.randomNormal([96, 6], 0, 1, "float32", 21);
  const w = tf.randomNormal([6, 1], 0, 1, "float32", 22);
  const y = tf.sin(tf.matMul(x, w));
  return { x, y };
};

/** Two Kasmina layers with seeds in several states, between plain Dense layers. */
const grownModel = () => {
  const first = new KasminaLayer({ units: 16, numSeeds: 4, activation: "relu", layerId: "first", seed: 1, inputShape: [6] });
  const second = new KasminaLayer({ units: 8, numSeeds: 2, activation: "tanh", layerId: "second", seed: 2 });
  const model = tfl.sequential({ layers: [first, second, tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }) })] });
  first.table.write(0, { state: "GRAFTING", blueprint: blueprintIndex("residual_mlp"), strategy: "linear" });
  first.table.write(1, { state: "TRAINING", blueprint: blueprintIndex("residual_wide_tanh") });
  first.table.write(2, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_bottleneck") });
  second.table.write(1, { state: "GRAFTING", strategy: "momentum" });
  return { model, first, second };
};

const record = () => {
  const epochs: [string, number][] = [];
  const telemetry: [string, number, number][] = [];
  const metrics: [string, MetricsWindow, SeedMetricsBatch][] = [];
  return {
    epochs,
    telemetry,
    metrics,
    hooks: {
      onEpoch: (layerId: string, n: number) => epochs.push([layerId, n]),
      onTelemetry: (layerId: string, step: number, rows: Float32Array, columns: readonly string[]) => {
        expect(columns).toEqual(TELEMETRY_COLUMNS);
        telemetry.push([layerId, step, rows.length]);
      },
      onSeedMetrics: (layerId: string, window: MetricsWindow, batch: SeedMetricsBatch) => metrics.push([layerId, window, batch]),
    },
  };
};

describe("training a model with Kasmina layers", () => {
  it("learns under model.fit, and the trainer reports once per layer per epoch and per window", async () => {
    const { x, y } = task();
    const { model, first, second } = grownModel();
    model.compile({ optimizer: tf.train.adam(0.03), loss: "meanSquaredError" });
    const seen = record();
    const trainer = new KasminaTrainer({ layers: [first, second], hooks: seen.hooks, telemetryEvery: 4, grafting: { rampSteps: 10 } });
    const before = (model.evaluate(x, y) as tf.Scalar).dataSync()[0]!;
    // 96 samples / batch 16 = 6 steps per epoch, 8 epochs = 48 steps = 12 windows of 4.
    const history = await model.fit(x, y, { epochs: 8, batchSize: 16, shuffle: false, verbose: 0, callbacks: [trainer.callback()] });
    const after = (model.evaluate(x, y) as tf.Scalar).dataSync()[0]!;
    expect(after).toBeLessThan(before * 0.5);
    expect(history.history.loss!.length).toBe(8);

    expect(seen.epochs).toEqual([...Array(8)].flatMap(() => [["first", 1], ["second", 1]]));
    const windows = Array.from({ length: 12 }, (_, i) => 4 * (i + 1));
    expect(seen.telemetry.map(([id, step]) => `${id}@${step}`)).toEqual(windows.flatMap((s) => [`first@${s}`, `second@${s}`]));
    expect(seen.telemetry[0]![2]).toBe(4 * TELEMETRY_COLUMNS.length);
    const firstWindows = seen.metrics.filter(([id]) => id === "first").map(([, w]) => w);
    expect(firstWindows[0]).toEqual({ fromStep: 1, toStep: 4 });
    expect(firstWindows[1]).toEqual({ fromStep: 5, toStep: 8 });
    const [, , last] = seen.metrics.filter(([id]) => id === "first").at(-1)!;
    expect(last.columns).toEqual(SEED_METRIC_COLUMNS);
    expect(seedMetric(last, 1, "reconstruction_loss")).toBeLessThan(1);
    expect(Number.isNaN(seedMetric(last, 3, "reconstruction_loss"))).toBe(true);
    expect(Number.isFinite(seedMetric(last, 0, "performance_delta"))).toBe(true);
    // 48 grafting steps with a 10-step ramp: fully grafted.
    expect(first.table.alpha[0]).toBe(1);
    expect(second.table.alpha[1]).toBe(1);
    expect(first.table.alpha[2]).toBe(1);
    expect(first.table.alpha[1]).toBe(0);
  });

  it("learns under a custom loop with optimizer.minimize, ramping alpha one step at a time", async () => {
    const { x, y } = task();
    const { model, first, second } = grownModel();
    const optimizer = tf.train.adam(0.02);
    const trainer = new KasminaTrainer({ layers: [first, second], telemetryEvery: 0, grafting: { rampSteps: 20 } });
    const loss = () => tf.losses.meanSquaredError(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
    const initial = loss().dataSync()[0]!;
    const alphas: number[] = [];
    for (let step = 0; step < 40; step++) {
      trainer.beforeStep();
      optimizer.minimize(loss);
      await trainer.afterStep();
      alphas.push(first.table.alpha[0]!);
    }
    expect(loss().dataSync()[0]!).toBeLessThan(initial * 0.7);
    expect(alphas[0]).toBeCloseTo(1 / 20, 6);
    expect(alphas[9]).toBeCloseTo(10 / 20, 6);
    expect(alphas[19]).toBe(1);
    expect(trainer.step).toBe(40);
  });

  it("learns with tf.variableGrads and holds no tensors over from step to step", async () => {
    const { x, y } = task();
    const { model, first, second } = grownModel();
    const optimizer = tf.train.sgd(0.1);
    const trainer = new KasminaTrainer({ layers: [first, second], telemetryEvery: 2 });
    const step = async () => {
      trainer.beforeStep();
      const { value, grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
      optimizer.applyGradients(grads);
      const lossValue = value.dataSync()[0]!;
      tf.dispose([value, grads]);
      await trainer.afterStep();
      return lossValue;
    };
    const initial = await step();
    await step();
    const tensors = tf.memory().numTensors;
    let last = initial;
    for (let i = 0; i < 30; i++) last = await step();
    expect(last).toBeLessThan(initial);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});
