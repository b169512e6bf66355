import * as tf from "@tensorflow/tfjs-core";
import { blueprintHidden, blueprintInputWidth } from "./blueprint-cost.ts";
import { sourceOf, type BlueprintKind, type BlueprintSource } from "./blueprint-kinds.ts";
import { KasminaConfigError } from "./errors.ts";

/**
 * Blueprints as tensors: how one kind's parameters for one seed sit in a row of the layer's
 * bank, and what a fresh row holds. The kinds themselves and their registry live in
 * blueprint-kinds.ts (no tfjs there); they are re-exported here for existing importers.
 */
export {
  BUILTIN_BLUEPRINTS,
  blueprintAt,
  blueprintIndex,
  listBlueprints,
  registerBlueprint,
  requireBlueprint,
  sourceOf,
  type BlueprintActivation,
  type BlueprintKind,
  type BlueprintSource,
} from "./blueprint-kinds.ts";

/**
 * How one kind's parameters for one seed sit in a row of the layer's bank `[seeds, width]`.
 * One row per seed is what makes selecting, freezing, releasing, checkpointing and rolling
 * back a seed a row operation on one tensor.
 */
export interface BankLayout {
  readonly kind: BlueprintKind;
  readonly reads: BlueprintSource;
  readonly chunk: number;
  /** Rows of the encoder: `chunk` for a kind that reads the chunk, the layer's input width for one that reads the input. */
  readonly input: number;
  readonly hidden: number;
  /** encoder [input, hidden], encoder bias [hidden], decoder [hidden, chunk], decoder bias [chunk], reconstruction decoder [hidden, chunk]. */
  readonly sizes: readonly [number, number, number, number, number];
  readonly width: number;
}

/**
 * `inputDim` (the layer's input width) is needed only by a kind that reads the input, whose
 * encoder has one row per input feature; a layer knows it once built.
 */
export const bankLayout = (kind: BlueprintKind, chunk: number, inputDim?: number): BankLayout => {
  const reads = sourceOf(kind);
  if (reads === "input" && !(Number.isInteger(inputDim) && inputDim! > 0)) {
    throw new KasminaConfigError({ reason: "bad_config", message: `blueprint "${kind.id}" reads the layer's input: its bank layout needs the input width, got ${inputDim}` });
  }
  const input = blueprintInputWidth(kind, chunk, inputDim ?? chunk);
  const hidden = blueprintHidden(kind, chunk);
  const sizes = [input * hidden, hidden, hidden * chunk, chunk, hidden * chunk] as const;
  return { kind, reads, chunk, input, hidden, sizes, width: sizes.reduce((a, b) => a + b, 0) };
};

/**
 * Fresh parameters for `rows` seeds: a Glorot-uniform encoder and everything else zero. The
 * zero decoder is the invariant that makes grafting start exactly at the host's function;
 * the zero reconstruction decoder makes a fresh seed's reconstruction loss exactly 1.
 */
export const freshBankRows = (layout: BankLayout, rows: number, seed?: number): tf.Tensor2D =>
  tf.tidy(() => {
    const limit = Math.sqrt(6 / (layout.input + layout.hidden));
    const encoder = tf.randomUniform([rows, layout.sizes[0]], -limit, limit, "float32", seed);
    const rest = tf.zeros([rows, layout.width - layout.sizes[0]]);
    return tf.concat([encoder, rest], 1) as tf.Tensor2D;
  });
