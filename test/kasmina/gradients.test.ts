import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaLayer } from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, reconstructionLosses, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

const MLP = blueprintIndex("residual_mlp");

const layerWith = (states: readonly (readonly [string, number?])[], features = 6) => {
  const layer = new KasminaLayer({ units: states.length * 4, numSeeds: states.length, activation: "relu", blueprints: ["residual_mlp"], seed: 2 });
  layer.build([null, features]);
  states.forEach(([state, alpha], s) => layer.table.write(s, { state: state as never, blueprint: MLP, alpha: alpha ?? 0 }));
  layer.seedPlan();
  return layer;
};

const bankOf = (layer: KasminaLayer) => layer.trainableWeights.find((w) => w.name.includes("blueprints_residual_mlp"))!;

/** Per-seed squared norm of the gradient on the seed's bank row. */
const rowGradients = (layer: KasminaLayer, x: tf.Tensor2D): number[] => {
  const bank = bankOf(layer);
  const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
  const g = grads[(bank.read() as tf.Variable).name];
  return g ? Array.from(tf.sum(tf.square(g), 1).dataSync()) : [];
};

const trainSteps = (layer: KasminaLayer, optimizer: tf.Optimizer, x: tf.Tensor2D, target: tf.Tensor, steps: number, only?: tf.Variable[]): void => {
  for (let i = 0; i < steps; i++) {
    optimizer.minimize(() => tf.losses.meanSquaredError(target, layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, false, only);
  }
};

const chunkOf = (output: tf.Tensor, seed: number, chunk: number): Float32Array =>
  tf.tidy(() => tf.slice(output, [0, seed * chunk], [-1, chunk]).dataSync() as Float32Array).slice();

describe("per-seed freezing", () => {
  it("gives gradient to learning blueprints (TRAINING, GRAFTING, FINE_TUNING, FOSSILIZED) and none to frozen or released ones", () => {
    const states = [["GRAFTING", 0.5], ["FINE_TUNING"], ["STABILIZATION"], ["EVALUATING"], ["FOSSILIZED"], ["TRAINING"], ["DORMANT"], ["CULLED"]] as const;
    const layer = layerWith(states);
    scrambleBlueprints(layer, [0, 1, 2, 3, 4, 5, 6, 7]);
    const norms = rowGradients(layer, randomInput(5, 6));
    expect(norms).toHaveLength(8);
    [0, 1, 4, 5].forEach((s) => expect(norms[s], `seed ${s} (${states[s]![0]})`).toBeGreaterThan(0));
    [2, 3, 6, 7].forEach((s) => expect(norms[s], `seed ${s} (${states[s]![0]})`).toBe(0));
  });

  it("keeps a frozen blueprint bit-identical under Adam, whose momentum would otherwise keep moving it", () => {
    const layer = layerWith([["FINE_TUNING"], ["FINE_TUNING"]]);
    scrambleBlueprints(layer, [0, 1]);
    const x = randomInput(8, 6);
    const target = tf.randomNormal([8, 8], 0, 1, "float32", 4);
    const adam = tf.train.adam(0.05);
    // Only the blueprints train, so the host chunk, and with it a frozen seed's output, cannot move.
    const only = [bankOf(layer).read() as tf.Variable];
    trainSteps(layer, adam, x, target, 3, only);
    layer.table.write(0, { state: "EVALUATING" });
    const frozenOut = chunkOf(layer.apply(x) as tf.Tensor, 0, 4);
    const learningOut = chunkOf(layer.apply(x) as tf.Tensor, 1, 4);
    const frozen = layer.readSeedParams([0])[0]!;
    trainSteps(layer, adam, x, target, 4, only);
    expect(maxAbsDiff(chunkOf(layer.apply(x) as tf.Tensor, 0, 4), frozenOut)).toBe(0);
    expect(maxAbsDiff(chunkOf(layer.apply(x) as tf.Tensor, 1, 4), learningOut)).toBeGreaterThan(0);
    expect(maxAbsDiff(layer.readSeedParams([0])[0]!, frozen)).toBe(0);
    // Thawed again (EVALUATING -> FINE_TUNING), it resumes from exactly the frozen values.
    layer.table.write(0, { state: "FINE_TUNING" });
    layer.seedPlan();
    expect(maxAbsDiff(layer.readSeedParams([0])[0]!, frozen)).toBe(0);
  });

  it("releases a culled seed's blueprint: fresh encoder, zero decoder, so the slot can be reused", () => {
    const layer = layerWith([["FINE_TUNING"], ["FINE_TUNING"]]);
    scrambleBlueprints(layer, [0, 1]);
    const before = layer.readSeedParams([0])[0]!;
    layer.table.write(0, { state: "CULLED" });
    layer.seedPlan();
    const after = layer.readSeedParams([0])[0]!;
    const { sizes } = layer.layouts[0]!;
    const decoderStart = sizes[0] + sizes[1];
    expect(after.subarray(decoderStart).every((v) => v === 0)).toBe(true);
    expect(maxAbsDiff(after.subarray(0, sizes[0]), before.subarray(0, sizes[0]))).toBeGreaterThan(0);
    expect(after.subarray(0, sizes[0]).some((v) => v !== 0)).toBe(true);
  });
});

describe("the TRAINING objective", () => {
  it("trains the blueprint to reconstruct its chunk while the layer's output stays the host's", () => {
    const layer = layerWith([["TRAINING"], ["TRAINING"], ["DORMANT"]], 5);
    const x = randomInput(32, 5, 9);
    const target = tf.randomNormal([32, 12], 0, 1, "float32", 8);
    const adam = tf.train.adam(0.02);
    const reconstruction = (): number[] => reconstructionLosses(layer, x, [0, 1, 2]);
    const first = reconstruction();
    expect(first[0]).toBeCloseTo(1, 5); // a fresh reconstruction decoder is zero: nothing reconstructed
    expect(Number.isNaN(first[2]!)).toBe(true); // not in TRAINING: not applicable
    for (let round = 0; round < 6; round++) {
      trainSteps(layer, adam, x, target, 10);
      const [kernel, bias] = layer.getWeights();
      const host = tf.fused.matMul({ a: x, b: kernel as tf.Tensor2D, bias: bias!, activation: "relu" });
      expect(maxAbsDiff((layer.apply(x, { training: true }) as tf.Tensor).dataSync(), host.dataSync())).toBe(0);
      expect(maxAbsDiff((layer.apply(x) as tf.Tensor).dataSync(), host.dataSync())).toBe(0);
    }
    const last = reconstruction();
    expect(last[0]).toBeLessThan(first[0]! * 0.5);
    expect(last[1]).toBeLessThan(first[1]! * 0.5);
    // The blended decoder never moved: grafting will start exactly at the host's function.
    const { sizes } = layer.layouts[0]!;
    const params = layer.readSeedParams([0, 1])[0]!;
    const width = layer.layouts[0]!.width;
    for (const s of [0, 1]) {
      const row = params.subarray(s * width, (s + 1) * width);
      expect(row.subarray(sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2] + sizes[3]).every((v) => v === 0)).toBe(true);
    }
  });
});

describe("optimizer slots", () => {
  it("keeps Adam's per-variable slots aligned when a blueprint kind first joins the gradient mid-training (regression: shape mismatch in adam_optimizer)", () => {
    const layer = new KasminaLayer({ units: 8, numSeeds: 2, activation: "relu", blueprints: ["residual_mlp", "residual_wide_tanh"], seed: 3 });
    layer.build([null, 4]);
    layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_wide_tanh") });
    const x = randomInput(6, 4);
    const target = tf.randomNormal([6, 8], 0, 1, "float32", 5);
    const adam = tf.train.adam(0.01);
    trainSteps(layer, adam, x, target, 2);
    // Now the mlp bank is used too; Adam keys slots by position in the gradient list.
    layer.table.write(1, { state: "FINE_TUNING", blueprint: MLP });
    expect(() => trainSteps(layer, adam, x, target, 2)).not.toThrow();
    const out = (layer.apply(x) as tf.Tensor).dataSync();
    expect(out.every(Number.isFinite)).toBe(true);
  });
});
