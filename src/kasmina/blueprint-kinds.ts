import { KasminaConfigError } from "./errors.ts";

/**
 * Blueprint kinds: the small networks a seed grows into its chunk, and the registry that gives
 * each kind the integer the state table stores. This file holds the kinds as data and imports
 * no tfjs, so a controller can reason about kinds (and price them, blueprint-cost.ts) without
 * loading a tensor library; blueprints.ts lays the kinds out as tensors.
 *
 * A kind is `hidden = act(encode(source))`, `blueprint = decode(hidden)`, blended as
 * `chunk + alpha * blueprint`, where the source is either
 * - "chunk": the seed's own chunk of the host's output (a residual adapter, chunk -> hidden ->
 *   chunk). It can reshape what the host computed but sees nothing the host threw away; or
 * - "input": the layer's input `[batch, inputDim]` (a lateral branch, input -> hidden -> chunk).
 *   It adds width: new units beside the host's, reading what the host reads. In a narrow layer
 *   after a compact projection this is what raised MNIST accuracy from ~90% to ~93-94%, where
 *   a residual adapter added nothing; its bank grows with the input width, which is why a
 *   layer holds it only when asked (layer.ts, `blueprints`).
 * Kinds differ only in source, hidden width and activation, which is what lets one layer run
 * all seeds of one kind as one grouped matmul (seed-forward.ts).
 *
 * The registry is append-only, so an index once handed out keeps meaning the same kind for the
 * life of the process; checkpoints store ids, not indices, so they survive a different
 * registration order elsewhere. New built-in kinds are appended for the same reason.
 */
export type BlueprintActivation = "relu" | "tanh";
export type BlueprintSource = "chunk" | "input";

/**
 * A kind of blueprint a seed can grow: `hidden = activation(encode(source))`, decoded into the seed's
 * chunk and blended in by alpha. `registerBlueprint` adds one; a layer holds only the kinds named
 * in its `blueprints` (by default every kind that reads the chunk).
 */
export interface BlueprintKind {
  /** The `blueprint_id` of BlueprintUpdateCommand. */
  readonly id: string;
  /** Hidden width relative to the chunk: hidden = max(1, round(hiddenPerChunk * chunk)). */
  readonly hiddenPerChunk: number;
  /** Activation of the hidden units. */
  readonly activation: BlueprintActivation;
  /** What the encoder reads: the seed's chunk (default) or the layer's input. */
  readonly reads?: BlueprintSource;
  /** What the kind is for, in words, for people. */
  readonly description: string;
}

/**
 * The kinds every process has registered, in registry order: the residual adapters `residual_bottleneck`, `residual_mlp`
 * (a layer's default) and `residual_wide_tanh`, and the input-reading `lateral_mlp` and `lateral_wide`, which a layer holds
 * only when its `blueprints` name them.
 */
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
  {
    id: "lateral_mlp",
    hiddenPerChunk: 8,
    activation: "relu",
    reads: "input",
    description: "ReLU branch from the layer's input, eight hidden units per chunk unit: adds width where the layer is too narrow",
  },
  {
    id: "lateral_wide",
    hiddenPerChunk: 16,
    activation: "relu",
    reads: "input",
    description: "ReLU branch from the layer's input, sixteen hidden units per chunk unit: the most added width",
  },
];

/** The kind's source with the default filled in. */
export const sourceOf = (kind: BlueprintKind): BlueprintSource => kind.reads ?? "chunk";

const registry: BlueprintKind[] = [...BUILTIN_BLUEPRINTS];
const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

const sameDefinition = (a: BlueprintKind, b: BlueprintKind): boolean =>
  a.hiddenPerChunk === b.hiddenPerChunk && a.activation === b.activation && sourceOf(a) === sourceOf(b);

/** Adds a kind and returns its state-table index. Registering the same definition twice is a no-op. */
export const registerBlueprint = (kind: BlueprintKind): number => {
  // The source is checked first: a duplicate id with a bad source is a bad definition, not a clash.
  if (kind.reads !== undefined && kind.reads !== "chunk" && kind.reads !== "input") {
    throw new KasminaConfigError({ reason: "bad_blueprint", message: `blueprint "${kind.id}": reads must be "chunk" or "input", got ${JSON.stringify(kind.reads)}` });
  }
  const existing = registry.findIndex((k) => k.id === kind.id);
  if (existing >= 0) {
    if (sameDefinition(registry[existing]!, kind)) return existing;
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

/** Every registered kind, built-in ones first, in registry order (a kind's index is its state-table integer). */
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
