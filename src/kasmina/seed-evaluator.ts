import * as tf from "@tensorflow/tfjs-core";
import type { LayersModel } from "@tensorflow/tfjs-layers";
import { blueprintAt } from "./blueprints.ts";
import type { KasminaLayer } from "./layer.ts";
import { effectiveAlpha } from "./seed-roles.ts";

/**
 * What each grafted seed is worth on held-out data, measured rather than estimated: the loss
 * with every seed as it is, and for each seed that blends a blueprint the loss with that one
 * seed ablated (KasminaLayer.ablate: alpha 0 for the pass, the state table untouched).
 *
 * The telemetry's performance_delta is a first-order estimate on the training batch, taken
 * while the seed is still learning; a controller deciding to keep or cull a seed needs what
 * removing it would cost on data it did not train on, which only a pass without it can say.
 * One inference pass per measured seed over `x`: evaluation cost, not a training step's.
 */
export interface SeedContributionOptions {
  /** The model to evaluate (inference only: `training: false`). */
  readonly model: LayersModel;
  /** The Kasmina layers of `model` whose seeds are measured. */
  readonly layers: readonly KasminaLayer[];
  /** Held-out inputs `[rows, features]`, data the model does not train on. */
  readonly x: tf.Tensor2D;
  /** One-hot targets `[rows, classes]`. */
  readonly y: tf.Tensor2D;
  /** Rows per forward pass. Default 1024. */
  readonly batchSize?: number;
  /**
   * What the model outputs. "logits" (the default; esper's hosts end in a linear head, trained
   * with softmax cross-entropy) is turned into probabilities here; "probabilities" (a softmax
   * head) is used as it is, clipped to [1e-7, 1] before the log as tfjs-layers clips it.
   */
  readonly output?: "logits" | "probabilities";
}

/** One seed's worth on the held-out data: the loss and accuracy with it ablated, and the differences it makes. */
export interface SeedContribution {
  readonly layerId: string;
  readonly seedId: number;
  /** The blueprint kind the seed runs (the layer's default when its row names none). */
  readonly blueprintId: string | null;
  /** The alpha the seed blends with in its state (what ablation took away). */
  readonly alpha: number;
  /** Mean categorical cross-entropy and accuracy with this seed ablated. */
  readonly loss: number;
  /** Fraction of rows classified right (argmax) with this seed ablated. */
  readonly accuracy: number;
  /** loss without the seed - loss with every seed: > 0 means the seed helps, in loss units. */
  readonly performanceDelta: number;
  /** accuracy with every seed - accuracy without this one: > 0 means the seed helps. */
  readonly accuracyDelta: number;
}

/** What `measureSeedContributions` measured: the whole model's loss and accuracy, and one entry per blended seed. */
export interface SeedContributions {
  /** Mean categorical cross-entropy and accuracy with every seed as its state says. */
  readonly loss: number;
  /** Fraction of rows classified right (argmax) with every seed as its state says. */
  readonly accuracy: number;
  /** One entry per seed whose state blends its blueprint at alpha > 0, layers in the given order, seeds ascending. */
  readonly seeds: readonly SeedContribution[];
}

const DEFAULT_BATCH = 1024;
const PROBABILITY_FLOOR = 1e-7;

/** Sum of cross-entropy and count of correct rows over `x`, batch by batch. Disposes everything it makes. */
const evaluate = (options: SeedContributionOptions, batchSize: number): { loss: number; accuracy: number } => {
  const { model, x, y } = options;
  const rows = x.shape[0];
  let total: tf.Tensor1D | null = null;
  try {
    for (let start = 0; start < rows; start += batchSize) {
      const size = Math.min(batchSize, rows - start);
      const sums = tf.tidy(() => {
        // The whole set in one pass when it fits: on wasm a slice copies its whole source.
        const xb = size === rows ? x : tf.slice(x, [start, 0], [size, x.shape[1]]);
        const yb = size === rows ? y : tf.slice(y, [start, 0], [size, y.shape[1]]);
        const out = model.apply(xb, { training: false }) as tf.Tensor2D;
        const logProbabilities = options.output === "probabilities" ? tf.log(tf.clipByValue(out, PROBABILITY_FLOOR, 1)) : tf.logSoftmax(out);
        const crossEntropy = tf.neg(tf.sum(tf.mul(yb, logProbabilities)));
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), tf.argMax(yb, 1)), "float32"));
        const batchSums = tf.stack([crossEntropy, correct]) as tf.Tensor1D;
        return total ? (tf.add(total, batchSums) as tf.Tensor1D) : batchSums;
      });
      total?.dispose();
      total = sums;
    }
    const [lossSum, correct] = total ? Array.from(total.dataSync()) : [Number.NaN, Number.NaN];
    return { loss: lossSum! / rows, accuracy: correct! / rows };
  } finally {
    total?.dispose();
  }
};

/**
 * Measures every seed whose state blends its blueprint (alpha > 0) on held-out data: one inference pass with every
 * seed, then one per seed with that seed ablated; the state table is left untouched. Report each seed's
 * `performanceDelta` as its `performance_delta` guard metric (with the trainer's `performanceDelta: "held_out"`).
 * Synchronous; a `batchSize` that is not a positive integer throws a RangeError.
 */
export const measureSeedContributions = (options: SeedContributionOptions): SeedContributions => {
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const { layers } = options;
  const clear = () => layers.forEach((layer) => layer.ablate(null));
  try {
    clear();
    const all = evaluate(options, batchSize);
    const seeds: SeedContribution[] = [];
    for (const layer of layers) {
      const { table } = layer;
      for (let seedId = 0; seedId < layer.numSeeds; seedId++) {
        const alpha = effectiveAlpha(table.state[seedId]!, table.alpha[seedId]!);
        if (!(alpha > 0)) continue;
        layer.ablate([seedId]);
        const without = evaluate(options, batchSize);
        layer.ablate(null);
        const index = table.blueprint[seedId]!;
        seeds.push({
          layerId: layer.layerId,
          seedId,
          blueprintId: index < 0 ? layer.defaultBlueprint : (blueprintAt(index)?.id ?? null),
          alpha,
          loss: without.loss,
          accuracy: without.accuracy,
          performanceDelta: without.loss - all.loss,
          accuracyDelta: all.accuracy - without.accuracy,
        });
      }
    }
    return { loss: all.loss, accuracy: all.accuracy, seeds };
  } finally {
    clear();
  }
};
