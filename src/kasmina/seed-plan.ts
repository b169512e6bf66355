import * as tf from "@tensorflow/tfjs-core";
import { stateOf } from "../../machines/lifecycle.ts";
import { KasminaConfigError } from "./errors.ts";
import { effectiveAlpha, learnsInState, roleOfCode } from "./seed-roles.ts";
import type { StateTable } from "./state-table.ts";

/**
 * The seed plan: what the forward pass needs to know about the state table, computed once per
 * table version. The spec part is plain typed arrays (one pass over the table, here and never
 * in the forward pass); `materializePlan` turns it into the few small tensors the forward pass
 * indexes with. Between table writes the forward pass reuses them as they are.
 */

/** Seeds of one blueprint kind that take part in one path (blend or reconstruction). */
export interface SeedGroupSpec {
  /** Index of the kind among the layer's banks. */
  readonly kind: number;
  /** Seed ids, ascending. */
  readonly seeds: Int32Array;
  readonly alpha: Float32Array;
  /** 1 where the seed's blueprint learns in its state, 0 where it is frozen. */
  readonly learns: Uint8Array;
}

export interface SeedPlanSpec {
  readonly version: number;
  readonly numSeeds: number;
  /** Seeds whose blueprint is blended in (alpha > 0), grouped by kind, kinds ascending. */
  readonly blend: readonly SeedGroupSpec[];
  /** Seeds in TRAINING, grouped by kind: they learn the reconstruction objective at alpha 0. */
  readonly reconstruct: readonly SeedGroupSpec[];
  readonly alpha: Float32Array;
  readonly learns: Uint8Array;
  readonly blended: Uint8Array;
  readonly reconstructing: Uint8Array;
}

/**
 * `kindOf(blueprintIndex)` maps the table's registry index (or -1, none chosen yet) to one of
 * the layer's banks, or -1 when the layer holds no bank for it. Seeds marked in `ablated` blend
 * at alpha 0 whatever their state says (KasminaLayer.ablate); their TRAINING objective, which
 * never reaches the output, is left as it is.
 */
export const planSeeds = (table: StateTable, kindOf: (blueprintIndex: number) => number, ablated: Uint8Array | null = null): SeedPlanSpec => {
  const n = table.numSeeds;
  const alpha = new Float32Array(n);
  const learns = new Uint8Array(n);
  const blended = new Uint8Array(n);
  const reconstructing = new Uint8Array(n);
  const blendBy = new Map<number, number[]>();
  const reconBy = new Map<number, number[]>();
  for (let s = 0; s < n; s++) {
    const code = table.state[s]!;
    alpha[s] = ablated?.[s] ? 0 : effectiveAlpha(code, table.alpha[s]!);
    learns[s] = learnsInState(code) ? 1 : 0;
    const reconstructs = roleOfCode(code).learning === "reconstruction";
    if (alpha[s]! <= 0 && !reconstructs) continue;
    const kind = kindOf(table.blueprint[s]!);
    if (kind < 0) {
      throw new KasminaConfigError({
        reason: "unknown_blueprint",
        message: `seed ${s} is ${stateOf(code)} with blueprint index ${table.blueprint[s]}, which this layer holds no bank for`,
      });
    }
    const target = reconstructs ? reconBy : blendBy;
    if (reconstructs) reconstructing[s] = 1;
    else blended[s] = 1;
    const list = target.get(kind);
    if (list) list.push(s);
    else target.set(kind, [s]);
  }
  const groups = (by: Map<number, number[]>): SeedGroupSpec[] =>
    [...by.entries()]
      .sort(([a], [b]) => a - b)
      .map(([kind, seeds]) => ({
        kind,
        seeds: Int32Array.from(seeds),
        alpha: Float32Array.from(seeds, (s) => alpha[s]!),
        learns: Uint8Array.from(seeds, (s) => learns[s]!),
      }));
  return { version: table.version, numSeeds: n, blend: groups(blendBy), reconstruct: groups(reconBy), alpha, learns, blended, reconstructing };
};

/** The state and blueprint columns a plan was built from, to see what changed at the next build. */
export interface PlanBasis {
  readonly state: Uint8Array;
  readonly blueprint: Int32Array;
  readonly learns: Uint8Array;
}

export const planBasis = (table: StateTable): PlanBasis => ({
  state: table.state.slice(),
  blueprint: table.blueprint.slice(),
  learns: Uint8Array.from(table.state, (code) => (learnsInState(code) ? 1 : 0)),
});

/**
 * Seeds whose blueprint slot must be re-initialised since `before`: those that entered a
 * releasing state (DORMANT, GERMINATED, CULLED, CANCELLED, ROLLED_BACK) or changed blueprint.
 * `structural` says whether any state or blueprint changed at all (an alpha-only write does not).
 */
export const releasedSince = (before: PlanBasis, table: StateTable): { readonly structural: boolean; readonly release: Uint8Array } => {
  const n = table.numSeeds;
  const release = new Uint8Array(n);
  let structural = false;
  for (let s = 0; s < n; s++) {
    const code = table.state[s]!;
    const stateChanged = code !== before.state[s];
    const blueprintChanged = table.blueprint[s] !== before.blueprint[s];
    if (stateChanged || blueprintChanged) structural = true;
    if ((stateChanged && roleOfCode(code).fresh) || blueprintChanged) release[s] = 1;
  }
  return { structural, release };
};

/** A group's tensors. `select` is one-hot `[seeds, n]` (picks the group's columns out of `[rows, seeds]`). */
export interface SeedGroup {
  readonly spec: SeedGroupSpec;
  readonly select: tf.Tensor2D;
  /** `[n, seeds]`: picks the group's rows out of a bank `[seeds, width]`. */
  readonly selectRows: tf.Tensor2D;
  /** `[1, n, 1]`, to scale the group's blueprint outputs `[batch, n, chunk]`. */
  readonly alpha: tf.Tensor3D;
  /** `[n, 1]`: 1 reads the trainable bank, 0 the frozen anchor. */
  readonly learns: tf.Tensor2D;
  readonly allLearn: boolean;
  readonly noneLearn: boolean;
  /**
   * The group's blueprint weights laid out for the forward pass, kept between inference passes
   * while the banks hold the same data (seed-forward.ts). Disposed with the plan.
   */
  readonly prepared: { value: PreparedWeights | null };
}

/** A group's weights in forward-pass layout, valid while the bank and anchor they came from are unchanged. */
export interface PreparedWeights {
  readonly bank: object;
  readonly anchor: object;
  readonly tensors: readonly tf.Tensor[];
}

export interface SeedPlan {
  readonly spec: SeedPlanSpec;
  readonly blend: readonly SeedGroup[];
  readonly reconstruct: readonly SeedGroup[];
  /** `[N, seeds]`: places the blend groups' outputs, concatenated in group order, back on their seeds. */
  readonly place: tf.Tensor2D | null;
  readonly alpha: tf.Tensor1D;
  readonly blended: tf.Tensor1D;
  readonly reconstructing: tf.Tensor1D;
  readonly learns: tf.Tensor1D;
  dispose(): void;
}

const oneHot = (seeds: Int32Array, numSeeds: number, seedsFirst: boolean): tf.Tensor2D => {
  const n = seeds.length;
  const values = new Float32Array(n * numSeeds);
  seeds.forEach((seed, j) => {
    values[seedsFirst ? seed * n + j : j * numSeeds + seed] = 1;
  });
  return tf.tensor2d(values, seedsFirst ? [numSeeds, n] : [n, numSeeds]);
};

const materializeGroup = (spec: SeedGroupSpec, numSeeds: number): SeedGroup => {
  const n = spec.seeds.length;
  const learnCount = spec.learns.reduce((a, b) => a + b, 0);
  return {
    spec,
    select: oneHot(spec.seeds, numSeeds, true),
    selectRows: oneHot(spec.seeds, numSeeds, false),
    alpha: tf.tensor3d(spec.alpha, [1, n, 1]),
    learns: tf.tensor2d(Float32Array.from(spec.learns), [n, 1]),
    allLearn: learnCount === n,
    noneLearn: learnCount === 0,
    prepared: { value: null },
  };
};

const disposePrepared = (group: SeedGroup): void => {
  group.prepared.value?.tensors.forEach((t) => t.dispose());
  group.prepared.value = null;
};

/** Builds the plan's tensors, kept: they outlive the forward pass that asked for them. */
export const materializePlan = (spec: SeedPlanSpec): SeedPlan => {
  const blend = spec.blend.map((g) => materializeGroup(g, spec.numSeeds));
  const reconstruct = spec.reconstruct.map((g) => materializeGroup(g, spec.numSeeds));
  const order = Int32Array.from(spec.blend.flatMap((g) => Array.from(g.seeds)));
  const tensors: tf.Tensor[] = [];
  const track = <T extends tf.Tensor>(t: T): T => {
    tensors.push(t);
    return t;
  };
  for (const g of [...blend, ...reconstruct]) tensors.push(g.select, g.selectRows, g.alpha, g.learns);
  const plan: SeedPlan = {
    spec,
    blend,
    reconstruct,
    place: order.length > 0 ? track(oneHot(order, spec.numSeeds, false)) : null,
    alpha: track(tf.tensor1d(spec.alpha)),
    blended: track(tf.tensor1d(spec.blended, "bool")),
    reconstructing: track(tf.tensor1d(spec.reconstructing, "bool")),
    learns: track(tf.tensor1d(spec.learns, "bool")),
    dispose: () => {
      tensors.forEach((t) => t.dispose());
      [...blend, ...reconstruct].forEach(disposePrepared);
    },
  };
  // The forward pass that asks for a plan may run inside someone's tidy (predict, variableGrads).
  tensors.forEach((t) => tf.keep(t));
  return plan;
};
