import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaLayer, TELEMETRY_COLUMNS, telemetryValue } from "../../src/kasmina/index.ts";
import { randomInput, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

const BATCH = 6;
const CHUNK = 4;

const layer = () => {
  const l = new KasminaLayer({ units: 3 * CHUNK, numSeeds: 3, activation: "relu", seed: 8 });
  l.build([null, 5]);
  l.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp") });
  l.table.write(1, { state: "TRAINING", blueprint: blueprintIndex("residual_mlp") });
  scrambleBlueprints(l, [0, 1, 2]);
  return l;
};

/** One seed's chunk of a `[batch, units]` output, as numbers. */
const chunkValues = (values: Float32Array, seed: number): number[] =>
  Array.from({ length: BATCH * CHUNK }, (_, i) => values[Math.floor(i / CHUNK) * 3 * CHUNK + seed * CHUNK + (i % CHUNK)]!);

describe("the telemetry tensor", () => {
  it("holds each seed's output statistics and gradient figures from the same forward and backward pass", () => {
    const kasmina = layer();
    const x = randomInput(BATCH, 5);
    const [kernel, bias] = kasmina.getWeights();
    const host = tf.relu(tf.add(tf.matMul(x, kernel!), bias!)).dataSync() as Float32Array;
    kasmina.armTelemetry();
    // loss = sum(output): dLoss/doutput is 1 everywhere, so the gradient figures are known exactly.
    const { value } = tf.variableGrads(() => tf.sum(kasmina.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    const rows = kasmina.takeTelemetry()!;
    expect(rows.shape).toEqual([3, TELEMETRY_COLUMNS.length]);
    const data = rows.dataSync() as Float32Array;
    const out = (kasmina.apply(x) as tf.Tensor).dataSync() as Float32Array;
    expect(value.dataSync()[0]).toBeCloseTo(out.reduce((a, b) => a + b, 0), 3);

    for (const seed of [0, 1, 2]) {
      const v = chunkValues(out, seed);
      const h = chunkValues(host, seed);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const at = (c: (typeof TELEMETRY_COLUMNS)[number]) => telemetryValue(data, seed, c);
      expect(at("mean")).toBeCloseTo(mean, 4);
      expect(at("variance")).toBeCloseTo(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length, 4);
      expect(at("sparsity")).toBeCloseTo(v.filter((b) => Math.abs(b) <= 1e-6).length / v.length, 5);
      expect(at("activation_norm")).toBeCloseTo(Math.sqrt(v.reduce((a, b) => a + b * b, 0) / BATCH), 4);
      expect(at("gradient_norm")).toBeCloseTo(Math.sqrt(BATCH * CHUNK), 4);
      const graft = v.map((b, i) => b - h[i]!);
      const drift = Math.sqrt(graft.reduce((a, b) => a + b * b, 0) / h.reduce((a, b) => a + b * b, 0));
      expect(at("drift")).toBeCloseTo(drift, 4);
    }
    // Seed 0 is grafted (alpha 1): its performance delta is -<dLoss/dchunk, graft> = -sum(graft).
    const graft0 = chunkValues(out, 0).map((b, i) => b - chunkValues(host, 0)[i]!);
    expect(telemetryValue(data, 0, "performance_delta")).toBeCloseTo(-graft0.reduce((a, b) => a + b, 0), 3);
    expect(telemetryValue(data, 0, "alpha")).toBe(1);
    expect(telemetryValue(data, 0, "blueprint_gradient_norm")).toBeGreaterThan(0);
    // Seed 1 trains its reconstruction; seed 2 is dormant: figures that do not apply are NaN.
    expect(telemetryValue(data, 1, "reconstruction_loss")).toBeGreaterThan(0);
    expect(telemetryValue(data, 1, "blueprint_gradient_norm")).toBeGreaterThan(0);
    for (const c of ["performance_delta", "reconstruction_loss", "blueprint_gradient_norm"] as const) expect(telemetryValue(data, 2, c)).toBeNaN();
    expect(telemetryValue(data, 0, "reconstruction_loss")).toBeNaN();
    expect(telemetryValue(data, 1, "performance_delta")).toBeNaN();
  });

  it("records nothing unless armed, and leaves the gradient columns NaN for a pass without a gradient", () => {
    const kasmina = layer();
    const x = randomInput(BATCH, 5);
    kasmina.apply(x);
    expect(kasmina.takeTelemetry()).toBeNull();
    kasmina.armTelemetry();
    kasmina.apply(x);
    const data = kasmina.takeTelemetry()!.dataSync() as Float32Array;
    expect(telemetryValue(data, 0, "mean")).not.toBeNaN();
    expect(telemetryValue(data, 0, "gradient_norm")).toBeNaN();
    expect(kasmina.takeTelemetry()).toBeNull();
  });
});
