import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaLayer, measureSeedContributions } from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

const forward = (layer: tfl.layers.Layer | tfl.LayersModel, x: tf.Tensor): Float32Array =>
  tf.tidy(() => (layer.apply(x) as tf.Tensor).dataSync() as Float32Array).slice();

/** Seeds 0 and 1 grafted (a lateral and a residual one), 2 in TRAINING, 3 dormant. */
const grownLayer = (layerId = "hidden", inputShape?: number[]): KasminaLayer => {
  const layer = new KasminaLayer({
    units: 8,
    numSeeds: 4,
    activation: "relu",
    blueprints: ["residual_mlp", "lateral_mlp"],
    layerId,
    seed: 5,
    ...(inputShape ? { inputShape } : {}),
  });
  return layer;
};

const graft = (layer: KasminaLayer): void => {
  layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("lateral_mlp") });
  layer.table.write(1, { state: "GRAFTING", blueprint: blueprintIndex("residual_mlp"), alpha: 0.6 });
  layer.table.write(2, { state: "TRAINING", blueprint: blueprintIndex("lateral_mlp") });
  scrambleBlueprints(layer, [0, 1, 2, 3]);
};

describe("ablation", () => {
  it("runs the ablated seeds at alpha 0, host only in their chunks, without touching the state table", () => {
    const layer = grownLayer();
    layer.build([null, 6]);
    graft(layer);
    const x = randomInput(5, 6);
    const all = forward(layer, x);
    const version = layer.table.version;
    const snapshot = layer.table.snapshot();
    layer.ablate([0]);
    expect(layer.ablated).toEqual([0]);
    const without0 = forward(layer, x);
    // The reference for "seed 0 at alpha 0": the same weights with seed 0's graft taken out by hand.
    const [kernel, bias] = layer.getWeights();
    const host = tf.tidy(() => tf.relu(tf.add(tf.matMul(x, kernel!), bias!)).dataSync() as Float32Array).slice();
    for (let i = 0; i < all.length; i++) expect(without0[i]).toBeCloseTo(i % 8 < 2 ? host[i]! : all[i]!, 6);
    expect(layer.table.version).toBe(version);
    expect(layer.table.snapshot()).toEqual(snapshot);
    layer.ablate(null);
    expect(layer.ablated).toBeNull();
    expect(maxAbsDiff(forward(layer, x), all)).toBe(0);
  });

  it("costs one plan rebuild: the plan is kept while the ablation holds, and no bank is settled or released", () => {
    const layer = grownLayer();
    layer.build([null, 6]);
    graft(layer);
    const x = randomInput(3, 6);
    forward(layer, x);
    const params = layer.readSeedParams([0, 1, 2, 3]);
    const plain = layer.seedPlan();
    layer.ablate([1, 0, 1]);
    expect(layer.ablated).toEqual([0, 1]);
    const ablated = layer.seedPlan();
    expect(ablated).not.toBe(plain);
    forward(layer, x);
    expect(layer.seedPlan()).toBe(ablated);
    const tensors = tf.memory().numTensors;
    forward(layer, x);
    expect(tf.memory().numTensors).toBe(tensors);
    layer.ablate(null);
    layer.readSeedParams([0, 1, 2, 3]).forEach((p, k) => expect(maxAbsDiff(p, params[k]!)).toBe(0));
    expect(() => layer.ablate([4])).toThrow(RangeError);
  });
});

/** A classifier: 6 inputs -> Kasmina(8, 4 seeds) -> Dense 3 logits. */
const classifier = () => {
  const layer = grownLayer("hidden", [6]);
  const model = tfl.sequential({ layers: [layer, tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotNormal({ seed: 9 }) })] });
  graft(layer);
  const x = randomInput(37, 6, 11);
  const y = tf.tidy(() => tf.cast(tf.oneHot(tf.argMax(tf.matMul(x, tf.randomNormal([6, 3], 0, 1, "float32", 12)), 1) as tf.Tensor1D, 3), "float32") as tf.Tensor2D);
  return { layer, model, x, y };
};

const lossAndAccuracy = (model: tfl.LayersModel, x: tf.Tensor2D, y: tf.Tensor2D) =>
  tf.tidy(() => {
    const logits = model.predict(x) as tf.Tensor2D;
    const loss = tf.losses.softmaxCrossEntropy(y, logits).dataSync()[0]!;
    const accuracy = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), "float32")).dataSync()[0]!;
    return { loss, accuracy };
  });

describe("measureSeedContributions", () => {
  it("measures every blended seed on held-out data: loss and accuracy without it, against everything on", () => {
    const { layer, model, x, y } = classifier();
    const measured = measureSeedContributions({ model, layers: [layer], x, y, batchSize: 10 });
    const all = lossAndAccuracy(model, x, y);
    expect(measured.loss).toBeCloseTo(all.loss, 5);
    expect(measured.accuracy).toBeCloseTo(all.accuracy, 6);
    // Seed 2 (TRAINING) and 3 (DORMANT) blend nothing: nothing to take away.
    expect(measured.seeds.map((s) => [s.layerId, s.seedId, s.blueprintId])).toEqual([
      ["hidden", 0, "lateral_mlp"],
      ["hidden", 1, "residual_mlp"],
    ]);
    // The GRAFTING seed's reference: the same network with its alpha set to 0 in the table.
    layer.table.setAlphas(Float32Array.from([1, 0, 0, 0]));
    const without1 = lossAndAccuracy(model, x, y);
    const seed1 = measured.seeds[1]!;
    expect(seed1.alpha).toBeCloseTo(0.6, 6);
    expect(seed1.loss).toBeCloseTo(without1.loss, 5);
    expect(seed1.performanceDelta).toBeCloseTo(without1.loss - all.loss, 5);
    expect(seed1.accuracyDelta).toBeCloseTo(all.accuracy - without1.accuracy, 6);
    const seed0 = measured.seeds[0]!;
    expect(seed0.performanceDelta).toBeCloseTo(seed0.loss - measured.loss, 6);
    expect(Math.abs(seed0.performanceDelta)).toBeGreaterThan(0);
    expect(layer.ablated).toBeNull();
  });

  it("gives the same figures whatever the batch size", () => {
    const { layer, model, x, y } = classifier();
    const whole = measureSeedContributions({ model, layers: [layer], x, y });
    const batched = measureSeedContributions({ model, layers: [layer], x, y, batchSize: 4 });
    expect(batched.loss).toBeCloseTo(whole.loss, 5);
    batched.seeds.forEach((s, i) => expect(s.performanceDelta).toBeCloseTo(whole.seeds[i]!.performanceDelta, 5));
  });

  it("reads a softmax head's probabilities when told so", () => {
    const { layer, model, x, y } = classifier();
    const probabilities = tfl.sequential({ layers: [model, tfl.layers.softmax()] });
    const fromLogits = measureSeedContributions({ model, layers: [layer], x, y });
    const fromProbabilities = measureSeedContributions({ model: probabilities, layers: [layer], x, y, output: "probabilities" });
    expect(fromProbabilities.loss).toBeCloseTo(fromLogits.loss, 4);
    expect(fromProbabilities.seeds[0]!.performanceDelta).toBeCloseTo(fromLogits.seeds[0]!.performanceDelta, 4);
  });

  it("disposes every tensor it makes", () => {
    const { layer, model, x, y } = classifier();
    measureSeedContributions({ model, layers: [layer], x, y, batchSize: 8 });
    forward(model, x); // the plan and cached weights for the unablated table, as before any measurement
    const before = tf.memory().numTensors;
    measureSeedContributions({ model, layers: [layer], x, y, batchSize: 8 });
    forward(model, x);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("leaves no ablation set and no tensor behind when a pass throws midway", () => {
    const { layer, model, x, y } = classifier();
    forward(model, x);
    const before = tf.memory().numTensors;
    let calls = 0;
    const failing = {
      apply: (input: tf.Tensor, args?: Parameters<tfl.LayersModel["apply"]>[1]) => {
        calls++;
        // The fourth pass is the second batch of the first ablated pass: the seed is ablated and a running sum is held.
        if (calls === 4) throw new Error("device lost");
        return model.apply(input, args);
      },
    } as unknown as tfl.LayersModel;
    expect(() => measureSeedContributions({ model: failing, layers: [layer], x: tf.slice(x, [0, 0], [20, 6]), y: tf.slice(y, [0, 0], [20, 3]), batchSize: 10 })).toThrow(
      "device lost",
    );
    expect(calls).toBe(4);
    expect(layer.ablated).toBeNull();
    forward(model, x);
    expect(tf.memory().numTensors).toBe(before + 2); // the two slices the test itself made
  });
});
