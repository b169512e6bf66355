import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaConfigError, KasminaLayer, type HostActivation } from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, scrambleBlueprints, slowBlend, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

/** A Kasmina layer and a tfjs Dense layer holding the same kernel and bias. */
const twins = (activation: HostActivation, units = 16, numSeeds = 4, features = 8) => {
  const kasmina = new KasminaLayer({ units, numSeeds, activation, seed: 11 });
  const dense = tfl.layers.dense({ units, activation, biasInitializer: "randomNormal" });
  kasmina.build([null, features]);
  dense.build([null, features]);
  const [kernel, bias] = dense.getWeights();
  kasmina.setWeights(kasmina.getWeights().map((w, i) => (i === 0 ? kernel! : i === 1 ? bias! : w)));
  return { kasmina, dense };
};

const forward = (layer: tfl.layers.Layer, x: tf.Tensor, training = false): Float32Array =>
  tf.tidy(() => (layer.apply(x, { training }) as tf.Tensor).dataSync() as Float32Array).slice();

describe("KasminaLayer forward pass", () => {
  it.each(["relu", "tanh", "linear"] as const)("with every seed at alpha 0 equals a Dense layer (%s) within 1e-6", (activation) => {
    const { kasmina, dense } = twins(activation);
    const x = randomInput(5, 8);
    expect(maxAbsDiff(forward(kasmina, x), forward(dense, x))).toBeLessThanOrEqual(1e-6);
    // Seeds that hold a blueprint at alpha 0 (TRAINING, a GRAFTING seed before its ramp, a released one) change nothing either,
    // even in a training pass where the TRAINING objective runs.
    kasmina.table.write(0, { state: "TRAINING", blueprint: blueprintIndex("residual_mlp") });
    kasmina.table.write(1, { state: "GRAFTING", blueprint: blueprintIndex("residual_wide_tanh"), alpha: 0 });
    kasmina.table.write(2, { state: "CULLED" });
    scrambleBlueprints(kasmina, [0, 1, 2]);
    const { value } = tf.variableGrads(() => tf.sum(kasmina.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    const denseSum = tf.sum(dense.apply(x) as tf.Tensor).dataSync()[0]!;
    expect(Math.abs(value.dataSync()[0]! - denseSum)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(forward(kasmina, x, true), forward(dense, x))).toBeLessThanOrEqual(1e-6);
  });

  it("blends each seed's blueprint exactly as a per-seed reference computes it, with mixed kinds and states", () => {
    const { kasmina } = twins("relu", 24, 6, 5);
    const rows = [
      { state: "GRAFTING", blueprint: "residual_mlp", alpha: 0.3 },
      { state: "FINE_TUNING", blueprint: "residual_wide_tanh", alpha: 0 },
      { state: "DORMANT", blueprint: "residual_mlp", alpha: 0.9 },
      { state: "FOSSILIZED", blueprint: "residual_bottleneck", alpha: 0 },
      { state: "EVALUATING", blueprint: "residual_mlp", alpha: 0 },
      { state: "CULLED", blueprint: "residual_wide_tanh", alpha: 1 },
    ] as const;
    rows.forEach((r, s) => kasmina.table.write(s, { state: r.state, blueprint: blueprintIndex(r.blueprint), alpha: r.alpha }));
    scrambleBlueprints(kasmina, [0, 1, 2, 3, 4, 5]);
    const x = randomInput(7, 5);
    const host = kasminaHost(kasmina, x);
    // Alpha by state: the table's alpha only for GRAFTING; 1 for FINE_TUNING/FOSSILIZED/EVALUATING; 0 for DORMANT/CULLED.
    const expected = slowBlend(kasmina, host, 7, [0.3, 1, 0, 1, 1, 0]);
    expect(maxAbsDiff(forward(kasmina, x), expected)).toBeLessThanOrEqual(1e-5);
  });

  it("uses a state-table change at the very next forward pass", () => {
    const { kasmina } = twins("relu");
    const x = randomInput(3, 8);
    kasmina.table.write(2, { blueprint: blueprintIndex("residual_mlp") });
    scrambleBlueprints(kasmina, [2]);
    const before = forward(kasmina, x);
    kasmina.table.write(2, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp") });
    const after = forward(kasmina, x);
    const changed = Array.from(after).map((v, i) => (v !== before[i] ? i % 16 : -1)).filter((u) => u >= 0);
    expect(changed.length).toBeGreaterThan(0);
    // Only seed 2's chunk (units 8..11) moved.
    expect(changed.every((unit) => unit >= 8 && unit < 12)).toBe(true);
    kasmina.table.write(2, { state: "ROLLED_BACK" });
    expect(maxAbsDiff(forward(kasmina, x), before)).toBe(0);
  });

  it("builds its seed tensors once per table version: an unchanged table costs no new tensors", () => {
    const { kasmina } = twins("relu");
    kasmina.table.write(1, { state: "GRAFTING", alpha: 0.5 });
    const x = randomInput(3, 8);
    forward(kasmina, x);
    const plan = kasmina.seedPlan();
    const tensors = tf.memory().numTensors;
    forward(kasmina, x);
    forward(kasmina, x);
    expect(kasmina.seedPlan()).toBe(plan);
    expect(tf.memory().numTensors).toBe(tensors);
    kasmina.table.write(1, { alpha: 0.6 });
    forward(kasmina, x);
    expect(kasmina.seedPlan()).not.toBe(plan);
    // The old plan's tensors were released with it.
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it("drops into the functional API like any layer, and a seed grafted there changes the model's output", () => {
    const input = tfl.input({ shape: [5] });
    const kasmina = new KasminaLayer({ units: 8, numSeeds: 2, activation: "relu", seed: 3 });
    const output = tfl.layers.dense({ units: 2 }).apply(kasmina.apply(input)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: output });
    const x = randomInput(4, 5);
    const before = (model.predict(x) as tf.Tensor).dataSync().slice();
    expect(before).toHaveLength(8);
    kasmina.table.write(1, { state: "FOSSILIZED", blueprint: blueprintIndex("residual_mlp") });
    scrambleBlueprints(kasmina, [1]);
    expect(maxAbsDiff((model.predict(x) as tf.Tensor).dataSync(), before)).toBeGreaterThan(0);
  });

  it("refuses units that do not split into equal chunks, with a typed error", () => {
    expect(() => new KasminaLayer({ units: 10, numSeeds: 4 })).toThrow(KasminaConfigError);
    try {
      new KasminaLayer({ units: 10, numSeeds: 4 });
    } catch (error) {
      expect((error as KasminaConfigError).reason).toBe("units_not_divisible");
      expect((error as Error).message).toMatch(/multiple of numSeeds/);
    }
  });

  it("refuses a seed whose table names a blueprint the layer holds no bank for", () => {
    const layer = new KasminaLayer({ units: 8, numSeeds: 2, blueprints: ["residual_mlp"] });
    layer.build([null, 3]);
    layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_wide_tanh") });
    expect(() => forward(layer, randomInput(2, 3))).toThrow(/holds no bank/);
  });

  it("serializes as a Keras-style layer: config round trip and model JSON", () => {
    const layer = new KasminaLayer({ units: 12, numSeeds: 3, activation: "tanh", blueprints: ["residual_mlp", "residual_bottleneck"], layerId: "Enc_1", seed: 5 });
    const config = layer.getConfig();
    const copy = new KasminaLayer(config as unknown as ConstructorParameters<typeof KasminaLayer>[0]);
    expect({ ...copy.getConfig(), name: null }).toEqual({ ...config, name: null });
    const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 6, inputShape: [4] }), layer] });
    const restored = tfl.models.modelFromJSON(JSON.parse(JSON.stringify(model.toJSON(undefined, false))));
    return restored.then((m) => {
      const inner = m.layers[1] as KasminaLayer;
      expect(inner).toBeInstanceOf(KasminaLayer);
      expect(inner.getClassName()).toBe("KasminaLayer");
      expect([inner.units, inner.numSeeds, inner.chunk, inner.layerId, inner.activation]).toEqual([12, 3, 4, "Enc_1", "tanh"]);
      expect(inner.blueprintIds).toEqual(["residual_mlp", "residual_bottleneck"]);
      expect(m.predict(tf.ones([2, 4])) as tf.Tensor).toHaveProperty("shape", [2, 12]);
    });
  });
});

/** The host Dense output of `layer` alone (its own kernel, no seeds). */
function kasminaHost(layer: KasminaLayer, x: tf.Tensor2D): Float32Array {
  const [kernel, bias] = layer.getWeights();
  return tf.tidy(() => tf.relu(tf.add(tf.matMul(x, kernel!), bias!)).dataSync() as Float32Array).slice();
}

describe("KasminaLayer backward pass", () => {
  it.each(["relu", "elu", "linear", "tanh"] as const)("gives the host kernel and bias the gradients a Dense layer gets (%s)", (activation) => {
    const { kasmina, dense } = twins(activation, 16, 4, 8);
    const x = randomInput(6, 8);
    const target = tf.randomNormal([6, 16], 0, 1, "float32", 3);
    const gradsOf = (layer: tfl.layers.Layer): Float32Array[] => {
      const vars = layer.trainableWeights.slice(0, 2).map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => tf.losses.meanSquaredError(target, layer.apply(x) as tf.Tensor) as tf.Scalar, vars);
      return vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
    };
    const [kernelK, biasK] = gradsOf(kasmina);
    const [kernelD, biasD] = gradsOf(dense);
    expect(maxAbsDiff(kernelK!, kernelD!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(biasK!, biasD!)).toBeLessThanOrEqual(1e-5);
    expect(Math.max(...Array.from(kernelD!).map(Math.abs))).toBeGreaterThan(1e-3);
  });
});
