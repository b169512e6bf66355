/**
 * One training run of the demo's network: a plain minibatch loop (Adam, softmax cross-entropy)
 * with hooks around each step, and an evaluation of the training, validation and test sets at
 * the end of every epoch. Batches come in an order drawn from the run's seed, so two arms with
 * the same seed see the same batches in the same order.
 */
import * as tf from "@tensorflow/tfjs-core";
import { SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";
import type { DigitSet, DigitSplit } from "./mnist.ts";
import { seededRandom } from "./random.ts";
import { lossAndAccuracy, parameterCount, type HostNetwork } from "./model.ts";
import type { EpochPoint, RunRecord } from "./record.ts";

export interface TrainOptions {
  readonly name: string;
  readonly seed: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** Called after every optimizer step (1-based step count); awaited. */
  readonly afterStep?: (step: number) => Promise<void>;
  readonly beforeStep?: (step: number) => void;
  /** Progress: after every step, and after every epoch with its figures. */
  readonly onStep?: (step: number, stepsPerEpoch: number, epoch: number) => void;
  readonly onEpoch?: (point: EpochPoint) => void;
  /** After each epoch's evaluation; awaited. */
  readonly afterEpoch?: (point: EpochPoint) => Promise<void>;
}

/**
 * The learning rate of an epoch: cosine from the full rate down to a tenth over the run, so the
 * last epochs settle and the final accuracy is the network's, not the noise of the last steps.
 */
export const learningRateAt = (base: number, epoch: number, epochs: number): number =>
  base * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / Math.max(1, epochs - 1))));

/** tfjs's Adam reads `learningRate` on every step but offers no setter. */
const setLearningRate = (optimizer: tf.AdamOptimizer, rate: number): void => {
  (optimizer as unknown as { learningRate: number }).learningRate = rate;
};

const evaluate = (network: HostNetwork, set: DigitSet): { loss: number; accuracy: number } => {
  // One pass over the whole set: predict() would cut it into batches of 32, each a slice (see DigitSet).
  const logits = network.model.apply(set.x, { training: false }) as tf.Tensor2D;
  const { loss, correct } = lossAndAccuracy(logits, set.y);
  const result = { loss: loss.dataSync()[0]!, accuracy: correct.dataSync()[0]! / set.size };
  tf.dispose([logits, loss, correct]);
  return result;
};

export const seedCounts = (network: HostNetwork): Partial<Record<SeedState, number>> => {
  const counts: Partial<Record<SeedState, number>> = {};
  for (const layer of network.layers) {
    for (const code of layer.table.state) {
      const state = SEED_STATES[code]!;
      counts[state] = (counts[state] ?? 0) + 1;
    }
  }
  return counts;
};

export const train = async (network: HostNetwork, data: DigitSplit, options: TrainOptions): Promise<RunRecord> => {
  const started = performance.now();
  const optimizer = tf.train.adam(options.learningRate);
  const random = seededRandom(options.seed * 7919 + 1);
  const n = data.train.size;
  const stepsPerEpoch = Math.ceil(n / options.batchSize);
  const epochs: EpochPoint[] = [];
  let step = 0;
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      setLearningRate(optimizer, learningRateAt(options.learningRate, epoch, options.epochs));
      const order = Int32Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const { pixels, labels } = data.train;
      for (let b = 0; b < stepsPerEpoch; b++) {
        const from = b * options.batchSize;
        const size = Math.min(options.batchSize, n - from);
        const bx = new Float32Array(size * 784);
        const by = new Float32Array(size * 10);
        for (let i = 0; i < size; i++) {
          const k = order[from + i]!;
          bx.set(pixels.subarray(k * 784, (k + 1) * 784), i * 784);
          by.set(labels.subarray(k * 10, (k + 1) * 10), i * 10);
        }
        const xb = tf.tensor2d(bx, [size, 784]);
        const yb = tf.tensor2d(by, [size, 10]);
        options.beforeStep?.(step + 1);
        const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yb, network.model.apply(xb, { training: true }) as tf.Tensor2D) as tf.Scalar, true);
        cost?.dispose();
        tf.dispose([xb, yb]);
        step++;
        await options.afterStep?.(step);
        options.onStep?.(step, stepsPerEpoch, epoch);
      }
      const t = evaluate(network, data.train);
      const v = evaluate(network, data.validation);
      const test = evaluate(network, data.test);
      const point: EpochPoint = {
        epoch,
        trainLoss: t.loss,
        trainAcc: t.accuracy,
        valLoss: v.loss,
        valAcc: v.accuracy,
        testAcc: test.accuracy,
        params: parameterCount(network),
        seeds: seedCounts(network),
      };
      epochs.push(point);
      await options.afterEpoch?.(point);
      options.onEpoch?.(point);
    }
  } finally {
    optimizer.dispose();
  }
  const last = epochs[epochs.length - 1]!;
  return { name: options.name, epochs, finalTestAcc: last.testAcc, params: last.params, seconds: (performance.now() - started) / 1000 };
};
