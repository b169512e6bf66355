import * as tf from "@tensorflow/tfjs-core";
import type { BankLayout } from "./blueprints.ts";
import { detachedMatMul, groupedMatMul, injectLoss, matMul, matMulDetachedA, tapGradient } from "./gradient-ops.ts";
import type { SeedGroup, SeedPlan } from "./seed-plan.ts";
import type { TelemetryCapture } from "./telemetry.ts";

/**
 * The seed path of a Kasmina layer: given the host's output and the seed plan, blend every
 * grafted seed's blueprint into its chunk and train the blueprints of seeds in TRAINING.
 *
 * Nothing here loops over seeds. The only loop is over the blueprint kinds present in the plan
 * (a handful, fixed by the registry): each kind runs as one grouped matmul over exactly its
 * active seeds, so cost follows the number of active seeds, and a layer with no active seed
 * never reaches this file.
 *
 * A kind that reads the layer's input instead of the chunk (blueprint-kinds.ts) differs only in
 * its encoder: all its seeds' encoders sit side by side as one `[inputDim, n * hidden]` matrix,
 * so the group's hidden layer is one ordinary matmul of the input; from there on (decoder,
 * blend, placement, telemetry) it is the same path as the residual kinds.
 *
 * Layout: the host output `[batch, seeds * chunk]` is transposed once to `[batch * chunk, seeds]`
 * (seeds last), so that picking a group's seeds is a matmul with a cached one-hot `[seeds, n]`
 * and placing their outputs back is a matmul with a one-hot `[n, seeds]` (gather/scatter would
 * be the obvious tools, but on wasm Gather is ~20x slower than these matmuls and
 * UnsortedSegmentSum, its gradient, does not exist). One transpose back gives the output.
 *
 * TRAINING objective (reconstruction): the blueprint's encoder, with a decoder of its own used
 * only in this state, learns to reconstruct the host's chunk (an autoencoder through the
 * blueprint's hidden layer, input detached from the host; a kind that reads the layer's input
 * rebuilds the chunk from that input, also detached: can this kind carry the chunk from what it
 * reads). Loss per seed:
 *   ||recon(chunk) - chunk||^2 / max(||chunk||^2, 1e-6 * count)   (1 for a fresh seed, 0 = perfect)
 * and that number is `reconstruction_loss`, which the TRAINING -> GRAFTING guard compares with
 * 0.01. Why this objective: the blueprint's output decoder stays exactly zero until GRAFTING,
 * so the layer's output is untouched while it trains and grafting starts exactly at the host's
 * function; the hidden units enter grafting as features that span the chunk instead of random
 * projections; and the gate means something: a kind wide enough to carry the chunk reaches it,
 * a bottleneck the chunk does not fit into does not. The loss reaches the optimizer through
 * `injectLoss`, so `model.fit` and custom loops train it without knowing it exists.
 */
export interface SeedBanks {
  readonly layouts: readonly BankLayout[];
  /** The trainable bank `[seeds, width]` of kind k (authoritative for seeds whose blueprint learns). */
  readonly bank: (kind: number) => tf.Tensor2D;
  /** The frozen copy `[seeds, width]` of kind k (authoritative for every other seed). */
  readonly anchor: (kind: number) => tf.Tensor2D;
}

export interface SeedPassOptions {
  readonly numSeeds: number;
  readonly chunk: number;
  /** A gradient is being taken (training=true, or inside a tape): run the TRAINING objective and gradient taps. */
  readonly learning: boolean;
  readonly capture: TelemetryCapture | null;
  readonly reconstructionWeight: number;
}

const RECONSTRUCTION_FLOOR = 1e-6;

/** `host`: the host's output `[batch, units]` (post-activation); `x`: the layer's input `[batch, inputDim]`. */
export const seedForward = (host: tf.Tensor2D, x: tf.Tensor2D, plan: SeedPlan, banks: SeedBanks, options: SeedPassOptions): tf.Tensor2D => {
  const { numSeeds, chunk, capture, learning } = options;
  const reconstruct = learning && plan.reconstruct.length > 0;
  if (plan.blend.length === 0 && !reconstruct && capture === null) return host;

  const [batch, units] = host.shape;
  const rows = batch * chunk;
  const hostT = tf.reshape(tf.transpose(tf.reshape(host, [batch, numSeeds, chunk]), [0, 2, 1]), [rows, numSeeds]) as tf.Tensor2D;

  let blueprintT: tf.Tensor2D | null = null;
  if (plan.blend.length > 0 && plan.place) {
    // Outside a gradient the bare kernels run: the custom-gradient wrappers cost time for nothing.
    const mm: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = learning ? matMul : (a, b) => tf.matMul(a, b);
    const outputs = plan.blend.map((group) => {
      const layout = banks.layouts[group.spec.kind]!;
      const weights = blendWeights(group, banks, learning, capture);
      const hidden =
        layout.reads === "input"
          ? encodeInput(layout, weights, x, learning ? matMul : null)
          : encode(layout, weights, tf.reshape(mm(hostT, group.select), [batch, chunk, group.spec.seeds.length]) as tf.Tensor3D, learning);
      return tf.mul(tf.add(groupedMatMul(hidden, weights.decoder, learning), weights.decoderBias), group.alpha) as tf.Tensor3D; // [batch, n, chunk]
    });
    const all = outputs.length === 1 ? outputs[0]! : tf.concat(outputs, 1);
    const allT = tf.reshape(tf.transpose(all, [0, 2, 1]), [rows, all.shape[1]]) as tf.Tensor2D;
    blueprintT = mm(allT, plan.place);
  }

  const aux = reconstruct ? reconstruction(hostT, x, plan, banks, options, batch) : null;

  let outT = blueprintT ? (tf.add(hostT, blueprintT) as tf.Tensor2D) : hostT;
  if (capture) {
    capture.recordForward({ output: outT, host: hostT, blueprint: blueprintT, batch, alpha: plan.alpha, learns: plan.learns, blended: plan.blended });
    if (learning) outT = tapGradient(outT, (dy) => capture.recordOutputGradient(dy as tf.Tensor2D));
  }
  const out = blueprintT || capture ? (tf.reshape(tf.transpose(tf.reshape(outT, [batch, chunk, numSeeds]), [0, 2, 1]), [batch, units]) as tf.Tensor2D) : host;
  return aux ? injectLoss(out, aux) : out;
};

/**
 * The group's parameter rows `[n, width]`: from the trainable bank where the seed's blueprint
 * learns, from the anchor where it is frozen. Mixing with a 0/1 mask (m*bank + (1-m)*anchor)
 * is exact for either value and gives frozen rows zero gradient; reading the anchor, which no
 * optimizer touches, is what keeps them frozen under momentum and weight decay as well.
 */
const groupParams = (group: SeedGroup, banks: SeedBanks, capture: TelemetryCapture | null): tf.Tensor2D => {
  const kind = group.spec.kind;
  if (group.noneLearn) return matMul(group.selectRows, banks.anchor(kind));
  let learned: tf.Tensor2D = matMul(group.selectRows, banks.bank(kind));
  if (capture) learned = tapBlueprintGradient(learned, group, capture);
  if (group.allLearn) return learned;
  const frozen = matMul(group.selectRows, banks.anchor(kind));
  return tf.add(tf.mul(learned, group.learns), tf.mul(frozen, tf.sub(1, group.learns))) as tf.Tensor2D;
};

const tapBlueprintGradient = (rows: tf.Tensor2D, group: SeedGroup, capture: TelemetryCapture): tf.Tensor2D => {
  const select = capture.hold(group.select);
  return tapGradient(rows, (dy) => {
    const perRow = tf.reshape(tf.sum(tf.square(dy), 1), [rows.shape[0], 1]);
    capture.addBlueprintGradientSq(tf.reshape(tf.matMul(select, perRow), [select.shape[0]]) as tf.Tensor1D);
  });
};

/** A group's weights in the layout the matmuls take. */
interface GroupWeights {
  /** Reads the chunk: `[chunk, n, hidden]` (grouped). Reads the input: `[inputDim, n * hidden]` (one plain matmul). */
  readonly encoder: tf.Tensor;
  /** Reads the chunk: `[1, n, hidden]`. Reads the input: `[n * hidden]` (rank 1, as fused matmul's bias must be). */
  readonly encoderBias: tf.Tensor;
  readonly decoder: tf.Tensor3D; // [hidden, n, chunk]
  readonly decoderBias: tf.Tensor3D; // [1, n, chunk]
  readonly reconstruction: tf.Tensor3D; // [hidden, n, chunk]
}

const groupWeights = (layout: BankLayout, params: tf.Tensor2D): GroupWeights => {
  const n = params.shape[0];
  const { chunk, hidden, input } = layout;
  const [encoder, encoderBias, decoder, decoderBias, reconstruction] = tf.split(params, [...layout.sizes], 1) as tf.Tensor2D[];
  const perSeed = (w: tf.Tensor2D, rows: number, cols: number) => tf.transpose(tf.reshape(w, [n, rows, cols]), [1, 0, 2]) as tf.Tensor3D;
  const lateral = layout.reads === "input";
  return {
    encoder: lateral ? tf.reshape(perSeed(encoder!, input, hidden), [input, n * hidden]) : perSeed(encoder!, chunk, hidden),
    // The clone gives the lateral bias a buffer of its own: wasm's fused matmul reads a bias's
    // rank from its buffer, and a reshape shares the rank-2 split's, which it refuses.
    encoderBias: lateral ? tf.clone(tf.reshape(encoderBias!, [n * hidden])) : tf.reshape(encoderBias!, [1, n, hidden]),
    decoder: perSeed(decoder!, hidden, chunk),
    decoderBias: tf.reshape(decoderBias!, [1, n, chunk]),
    reconstruction: perSeed(reconstruction!, hidden, chunk),
  };
};

/**
 * The blend path's weights. Under a gradient they are laid out anew from the banks on every
 * pass (they must be on the tape); in inference they are laid out once and kept while the bank
 * and anchor hold the same data (an optimizer step or a settle replaces it), which removes the
 * selection, split and transposes from every later forward pass.
 */
const blendWeights = (group: SeedGroup, banks: SeedBanks, learning: boolean, capture: TelemetryCapture | null): GroupWeights => {
  const layout = banks.layouts[group.spec.kind]!;
  if (learning || capture) return groupWeights(layout, groupParams(group, banks, learning ? capture : null));
  const bank = banks.bank(group.spec.kind).dataId;
  const anchor = banks.anchor(group.spec.kind).dataId;
  const cached = group.prepared.value;
  if (cached && cached.bank === bank && cached.anchor === anchor) {
    const [encoder, encoderBias, decoder, decoderBias, reconstruction] = cached.tensors as tf.Tensor3D[];
    return { encoder: encoder!, encoderBias: encoderBias!, decoder: decoder!, decoderBias: decoderBias!, reconstruction: reconstruction! };
  }
  cached?.tensors.forEach((t) => t.dispose());
  const weights = groupWeights(layout, groupParams(group, banks, null));
  const tensors = [weights.encoder, weights.encoderBias, weights.decoder, weights.decoderBias, weights.reconstruction].map((t) => tf.keep(t));
  group.prepared.value = { bank, anchor, tensors };
  return weights;
};

/** wasm's Tanh kernel is ~25x slower than its Sigmoid (measured); tanh(x) = 2 sigmoid(2x) - 1. */
const tanh = (x: tf.Tensor): tf.Tensor => tf.sub(tf.mul(tf.sigmoid(tf.mul(x, 2)), 2), 1);

const activate = (layout: BankLayout, pre: tf.Tensor): tf.Tensor => (layout.kind.activation === "tanh" ? tanh(pre) : tf.relu(pre));

/** `input` `[batch, chunk, n]` -> the hidden layer, transposed `[batch, hidden, n]` for the decoders. */
const encode = (layout: BankLayout, weights: GroupWeights, input: tf.Tensor3D, learning: boolean): tf.Tensor3D => {
  const pre = tf.add(groupedMatMul(input, weights.encoder as tf.Tensor3D, learning), weights.encoderBias);
  return tf.transpose(activate(layout, pre), [0, 2, 1]) as tf.Tensor3D;
};

/**
 * The layer's input `[batch, inputDim]` -> the hidden layer of every seed of an input-reading
 * group, `[batch, hidden, n]` like `encode`'s. `mm` is the matmul to differentiate through;
 * null means no gradient is taken, and then a relu group runs as one fused matmul+bias+relu.
 */
const encodeInput = (layout: BankLayout, weights: GroupWeights, x: tf.Tensor2D, mm: ((a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D) | null): tf.Tensor3D => {
  const encoder = weights.encoder as tf.Tensor2D;
  const bias = weights.encoderBias as tf.Tensor1D;
  const n = encoder.shape[1] / layout.hidden;
  const act =
    mm === null && layout.kind.activation === "relu"
      ? tf.fused.matMul({ a: x, b: encoder, bias, activation: "relu" })
      : activate(layout, tf.add(mm ? mm(x, encoder) : tf.matMul(x, encoder), bias));
  return tf.transpose(tf.reshape(act, [x.shape[0], n, layout.hidden]), [0, 2, 1]) as tf.Tensor3D;
};

/** The TRAINING objective, summed over seeds in TRAINING (each seed's loss touches only its own rows). */
const reconstruction = (hostT: tf.Tensor2D, x: tf.Tensor2D, plan: SeedPlan, banks: SeedBanks, options: SeedPassOptions, batch: number): tf.Scalar => {
  const { chunk, numSeeds, capture } = options;
  const count = batch * chunk;
  const losses: tf.Scalar[] = [];
  let perSeed: tf.Tensor1D | null = null;
  for (const group of plan.reconstruct) {
    const n = group.spec.seeds.length;
    const layout = banks.layouts[group.spec.kind]!;
    let params: tf.Tensor2D = matMul(group.selectRows, banks.bank(group.spec.kind));
    if (capture) params = tapBlueprintGradient(params, group, capture);
    const input = tf.reshape(detachedMatMul(hostT, group.select), [batch, chunk, n]) as tf.Tensor3D;
    const target = tf.transpose(input, [0, 2, 1]); // [batch, n, chunk]
    const weights = groupWeights(layout, params);
    const hidden = layout.reads === "input" ? encodeInput(layout, weights, x, matMulDetachedA) : encode(layout, weights, input, true);
    const rebuilt = groupedMatMul(hidden, weights.reconstruction);
    const error = tf.sum(tf.square(tf.sub(rebuilt, target)), [0, 2]);
    const energy = tf.maximum(tf.sum(tf.square(target), [0, 2]), RECONSTRUCTION_FLOOR * count);
    const loss = tf.div(error, energy) as tf.Tensor1D; // [n]
    losses.push(tf.sum(loss));
    if (capture) {
      const placed = tf.reshape(tf.matMul(group.select, tf.reshape(loss, [n, 1])), [numSeeds]) as tf.Tensor1D;
      perSeed = perSeed ? (tf.add(perSeed, placed) as tf.Tensor1D) : placed;
    }
  }
  if (capture && perSeed) capture.recordReconstruction(perSeed, plan.reconstructing);
  const total = losses.length === 1 ? losses[0]! : (tf.addN(losses) as tf.Scalar);
  return tf.mul(total, options.reconstructionWeight) as tf.Scalar;
};
