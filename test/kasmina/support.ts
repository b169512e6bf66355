import * as tf from "@tensorflow/tfjs-core";
import { expect } from "vitest";
import { initBackend, telemetryValue, type KasminaLayer } from "../../src/kasmina/index.ts";
import type { SeedRow } from "../../src/kasmina/state-table.ts";

/** Every Kasmina test runs on the default backend, the one users get. */
export const useDefaultBackend = async (): Promise<void> => {
  const info = await initBackend();
  expect(info.active).toBe("wasm");
};

export const randomInput = (batch: number, features: number, seed = 7): tf.Tensor2D => tf.randomNormal([batch, features], 0, 1, "float32", seed);

/** Writes random values into every parameter of `seeds`' blueprints (decoders included), keeping their rows. */
export const scrambleBlueprints = (layer: KasminaLayer, seeds: readonly number[], seed = 3): void => {
  let state = seed;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  const params = layer.readSeedParams(seeds).map((p) => p.map(() => next()));
  const rows: SeedRow[] = seeds.map((s) => layer.table.row(s));
  layer.restoreSeeds(seeds, params, rows);
};

/**
 * The blend computed the slow way, one seed at a time, from the rows `readSeedParams` returns:
 * chunk + alpha * (act(chunk W1 + b1) W2 + b2). The loop over seeds is the point: it is the
 * obviously-correct reference the vectorized pass must agree with.
 */
export const slowBlend = (layer: KasminaLayer, host: Float32Array, batch: number, alphas: readonly number[]): Float32Array => {
  const { chunk, numSeeds, units } = layer;
  const out = host.slice();
  for (let s = 0; s < numSeeds; s++) {
    const alpha = alphas[s]!;
    if (alpha === 0) continue;
    const k = layer.kindOf(layer.table.blueprint[s]!);
    const layout = layer.layouts[k]!;
    const row = layer.readSeedParams([s])[k]!;
    const h = layout.hidden;
    const [encW, encB, decW, decB] = [0, chunk * h, chunk * h + h, chunk * h + h + h * chunk].map((o, i) => row.subarray(o, o + layout.sizes[i]!));
    for (let b = 0; b < batch; b++) {
      const x = host.subarray(b * units + s * chunk, b * units + (s + 1) * chunk);
      const hidden = new Float64Array(h);
      for (let j = 0; j < h; j++) {
        let acc = encB![j]!;
        for (let c = 0; c < chunk; c++) acc += x[c]! * encW![c * h + j]!;
        hidden[j] = layout.kind.activation === "tanh" ? Math.tanh(acc) : Math.max(0, acc);
      }
      for (let c = 0; c < chunk; c++) {
        let acc = decB![c]!;
        for (let j = 0; j < h; j++) acc += hidden[j]! * decW![j * chunk + c]!;
        out[b * units + s * chunk + c] = x[c]! + alpha * acc;
      }
    }
  }
  return out;
};

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
};

/** Each seed's `reconstruction_loss` from one armed training pass (a gradient is taken, nothing is applied). */
export const reconstructionLosses = (layer: KasminaLayer, x: tf.Tensor2D, seeds: readonly number[]): number[] => {
  layer.armTelemetry();
  tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
  const rows = layer.takeTelemetry()!.dataSync() as Float32Array;
  return seeds.map((s) => telemetryValue(rows, s, "reconstruction_loss"));
};
