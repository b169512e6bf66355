import * as tf from "@tensorflow/tfjs-core";
import { KasminaConfigError } from "./errors.ts";

/**
 * Blueprints: the small networks a seed grows into its chunk. Every kind is a residual adapter
 * chunk -> hidden -> chunk, blended as `chunk + alpha * decode(act(encode(chunk)))`, and differs
 * only in hidden width and activation, which is what lets one layer run all seeds of one kind
 * as one grouped matmul (seed-forward.ts).
 *
 * The registry maps the wire's string `blueprint_id` to the integer the state table stores (the
 * index here). It is append-only, so an index once handed out keeps meaning the same kind for
 * the life of the process; checkpoints store ids, not indices, so they survive a different
 * registration order elsewhere.
 */
export type BlueprintActivation = "relu" | "tanh";

export interface BlueprintKind {
  /** The `blueprint_id` of BlueprintUpdateCommand. */
  readonly id: string;
  /** Hidden width relative to the chunk: hidden = max(1, round(hiddenPerChunk * chunk)). */
  readonly hiddenPerChunk: number;
  readonly activation: BlueprintActivation;
  readonly description: string;
}

export const BUILTIN_BLUEPRINTS: readonly BlueprintKind[] = [
  {
    id: "residual_bottleneck",
    hiddenPerChunk: 0.5,
    activation: "relu",
    description: "narrow ReLU adapter: cheapest; its reconstruction loss says whether the chunk is compressible",
  },
  {
    id: "residual_mlp",
    hiddenPerChunk: 2,
    activation: "relu",
    description: "ReLU adapter twice the chunk wide: can represent the chunk exactly, the default",
  },
  {
    id: "residual_wide_tanh",
    hiddenPerChunk: 4,
    activation: "tanh",
    description: "smooth adapter four times the chunk wide: most capacity, bounded hidden units",
  },
];

const registry: BlueprintKind[] = [...BUILTIN_BLUEPRINTS];
const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** Adds a kind and returns its state-table index. Registering the same definition twice is a no-op. */
export const registerBlueprint = (kind: BlueprintKind): number => {
  const existing = registry.findIndex((k) => k.id === kind.id);
  if (existing >= 0) {
    const k = registry[existing]!;
    if (k.hiddenPerChunk === kind.hiddenPerChunk && k.activation === kind.activation) return existing;
    throw new KasminaConfigError({ reason: "duplicate_blueprint", message: `blueprint "${kind.id}" is already registered with another definition` });
  }
  if (!ID_PATTERN.test(kind.id)) {
    throw new KasminaConfigError({ reason: "bad_blueprint", message: `blueprint id "${kind.id}" must match ${ID_PATTERN}` });
  }
  if (!(kind.hiddenPerChunk > 0) || !Number.isFinite(kind.hiddenPerChunk)) {
    throw new KasminaConfigError({ reason: "bad_blueprint", message: `blueprint "${kind.id}": hiddenPerChunk must be a positive number` });
  }
  if (kind.activation !== "relu" && kind.activation !== "tanh") {
    throw new KasminaConfigError({ reason: "bad_blueprint", message: `blueprint "${kind.id}": activation must be relu or tanh` });
  }
  registry.push({ ...kind });
  return registry.length - 1;
};

export const listBlueprints = (): readonly BlueprintKind[] => registry;

/** The state-table integer for a `blueprint_id`, or -1 when no such kind is registered. */
export const blueprintIndex = (id: string): number => registry.findIndex((k) => k.id === id);

export const blueprintAt = (index: number): BlueprintKind | undefined => registry[index];

export const requireBlueprint = (id: string): number => {
  const index = blueprintIndex(id);
  if (index < 0) {
    throw new KasminaConfigError({
      reason: "unknown_blueprint",
      message: `unknown blueprint "${id}"; registered: ${registry.map((k) => k.id).join(", ")}`,
    });
  }
  return index;
};

/**
 * How one kind's parameters for one seed sit in a row of the layer's bank `[seeds, width]`.
 * One row per seed is what makes selecting, freezing, releasing, checkpointing and rolling
 * back a seed a row operation on one tensor.
 */
export interface BankLayout {
  readonly kind: BlueprintKind;
  readonly chunk: number;
  readonly hidden: number;
  /** encoder [chunk, hidden], encoder bias [hidden], decoder [hidden, chunk], decoder bias [chunk], reconstruction decoder [hidden, chunk]. */
  readonly sizes: readonly [number, number, number, number, number];
  readonly width: number;
}

export const bankLayout = (kind: BlueprintKind, chunk: number): BankLayout => {
  const hidden = Math.max(1, Math.round(kind.hiddenPerChunk * chunk));
  const sizes = [chunk * hidden, hidden, hidden * chunk, chunk, hidden * chunk] as const;
  return { kind, chunk, hidden, sizes, width: sizes.reduce((a, b) => a + b, 0) };
};

/**
 * Fresh parameters for `rows` seeds: a Glorot-uniform encoder and everything else zero. The
 * zero decoder is the invariant that makes grafting start exactly at the host's function;
 * the zero reconstruction decoder makes a fresh seed's reconstruction loss exactly 1.
 */
export const freshBankRows = (layout: BankLayout, rows: number, seed?: number): tf.Tensor2D =>
  tf.tidy(() => {
    const limit = Math.sqrt(6 / (layout.chunk + layout.hidden));
    const encoder = tf.randomUniform([rows, layout.sizes[0]], -limit, limit, "float32", seed);
    const rest = tf.zeros([rows, layout.width - layout.sizes[0]]);
    return tf.concat([encoder, rest], 1) as tf.Tensor2D;
  });
