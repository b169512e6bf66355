import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaLayer } from "../../src/kasmina/index.ts";
import { randomInput, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

/**
 * The proof that nothing loops over seeds: the number of tfjs kernels a pass runs does not
 * depend on how many seeds the layer has, or how many of them are active. A JavaScript loop
 * over seeds would add kernels per seed.
 */
const PATTERN = [
  { state: "GRAFTING", blueprint: "residual_mlp", alpha: 0.5 },
  { state: "FINE_TUNING", blueprint: "residual_wide_tanh", alpha: 0 },
  { state: "TRAINING", blueprint: "residual_mlp", alpha: 0 },
  { state: "EVALUATING", blueprint: "residual_wide_tanh", alpha: 0 },
  { state: "DORMANT", blueprint: "residual_mlp", alpha: 0 },
] as const;

const layerOf = (numSeeds: number, active: boolean): KasminaLayer => {
  const layer = new KasminaLayer({ units: numSeeds * 4, numSeeds, activation: "relu", seed: 1 });
  layer.build([null, 8]);
  if (active) {
    for (let s = 0; s < numSeeds; s++) {
      const row = PATTERN[s % PATTERN.length]!;
      layer.table.write(s, { state: row.state, blueprint: blueprintIndex(row.blueprint), alpha: row.alpha });
    }
  }
  layer.seedPlan();
  return layer;
};

const kernelsOf = async (f: () => tf.TensorContainer): Promise<string[]> => (await tf.profile(f)).kernelNames;

const inference = (layer: tfl.layers.Layer, x: tf.Tensor) => () => tf.tidy(() => layer.apply(x) as tf.Tensor);
const trainingStep = (layer: KasminaLayer, x: tf.Tensor) => () =>
  tf.tidy(() => {
    layer.armTelemetry();
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
    const telemetry = layer.takeTelemetry()!;
    return [value, telemetry, ...Object.values(grads)];
  });

describe("no loop over seeds", () => {
  it("runs the same kernels for 5 seeds as for 80, with the same mix of states, in inference", async () => {
    const x = randomInput(3, 8);
    const small = await kernelsOf(inference(layerOf(5, true), x));
    const large = await kernelsOf(inference(layerOf(80, true), x));
    expect(small.length).toBeGreaterThan(5);
    expect(large).toEqual(small);
  });

  it("runs the same kernels for 5 seeds as for 80 in a training step with telemetry (forward, backward, readout)", async () => {
    const x = randomInput(3, 8);
    const small = await kernelsOf(trainingStep(layerOf(5, true), x));
    const large = await kernelsOf(trainingStep(layerOf(80, true), x));
    expect(large).toEqual(small);
  });

  it("runs exactly the kernels of a Dense layer while every seed is dormant", async () => {
    const x = randomInput(3, 8);
    const dense = tfl.layers.dense({ units: 64 * 4, activation: "relu" });
    const kasmina = await kernelsOf(inference(layerOf(64, false), x));
    expect(kasmina).toEqual(await kernelsOf(inference(dense, x)));
  });
});
