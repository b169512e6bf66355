import * as tf from "@tensorflow/tfjs-core";

/**
 * The few differentiable operations the seed path needs that tfjs does not give directly, each
 * defined with `tf.customGrad` so its backward pass uses only kernels every backend has.
 */

/**
 * One matmul per seed, all seeds in one op: `out[b, s, :] = x[b, :, s] @ w[:, s, :]`.
 *
 * x: `[batch, k, seeds]` (seeds last), w: `[k, seeds, n]`, out: `[batch, seeds, n]`.
 *
 * Why a depthwise convolution and not `tf.matMul` on `[seeds, batch, k]`: on the wasm backend a
 * BatchMatMul with more than one batch runs a naive loop (~0.2 GMAC/s measured, 15-20 ms for
 * 16 seeds of a 1024-unit layer), while DepthwiseConv2dNative runs through XNNPACK (~2 GMAC/s).
 * Laid out as an image of height 1 and width k with one channel per seed, a depthwise filter of
 * width k and channel multiplier n computes exactly the per-seed contraction, with no wasted
 * multiply. The backward pass is two more depthwise convolutions (wasm has no depthwise
 * backprop kernels): dx contracts dy with w transposed, dw treats the batch as the width.
 */
const groupedMatMulOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
  const [batch, k, seeds] = x.shape;
  const n = w.shape[2];
  const value = depthwise(tf.reshape(x, [batch, 1, k, seeds]), tf.reshape(w, [1, k, seeds, n]), [batch, seeds, n]);
  save([x, w]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor3D, tf.Tensor3D];
      const dyT = tf.transpose(dy, [0, 2, 1]); // [batch, n, seeds]
      const wT = tf.transpose(sw, [2, 1, 0]); // [n, seeds, k]
      const dxBySeed = depthwise(tf.reshape(dyT, [batch, 1, n, seeds]), tf.reshape(wT, [1, n, seeds, k]), [batch, seeds, k]);
      const dx = tf.transpose(dxBySeed, [0, 2, 1]);
      const xByFeature = tf.transpose(sx, [1, 0, 2]); // [k, batch, seeds]
      const dw = depthwise(tf.reshape(xByFeature, [k, 1, batch, seeds]), tf.reshape(dy, [1, batch, seeds, n]), [k, seeds, n]);
      return [dx, dw];
    },
  };
});

const depthwise = (input: tf.Tensor, filter: tf.Tensor, shape: [number, number, number]): tf.Tensor3D =>
  tf.reshape(tf.depthwiseConv2d(input as tf.Tensor4D, filter as tf.Tensor4D, 1, "valid"), shape);

/** `learning`: a gradient will be taken through it; otherwise the bare depthwise convolution runs. */
export const groupedMatMul = (x: tf.Tensor3D, w: tf.Tensor3D, learning = true): tf.Tensor3D => {
  if (learning) return groupedMatMulOp(x, w) as tf.Tensor3D;
  const [batch, k, seeds] = x.shape;
  return depthwise(tf.reshape(x, [batch, 1, k, seeds]), tf.reshape(w, [1, k, seeds, w.shape[2]]), [batch, seeds, w.shape[2]]);
};

/**
 * `a @ b` for 2D tensors, with a gradient that transposes explicitly instead of passing
 * transpose flags to matMul: tfjs-backend-wasm runs BatchMatMul with transposeA or transposeB
 * on a slow path (measured, 256x1024 by 1024x1024: 0.09 s plain, 1.0 s transposeB, 1.5 s
 * transposeA), which is what tfjs's own matMul gradient asks for.
 */
const matMulOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

export const matMul = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D => matMulOp(a, b) as tf.Tensor2D;

/**
 * Returns `value` unchanged and adds `aux` (a scalar) to whatever loss is being differentiated.
 * This is how the TRAINING objective trains blueprints under `model.fit`, `optimizer.minimize`
 * and `tf.variableGrads` alike, without the caller adding anything to its loss and without
 * changing the loss value it reports: the backward pass hands `aux` a gradient of one.
 */
const injectLossOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [value, aux] = args as [tf.Tensor, tf.Tensor];
  return { value: tf.clone(value), gradFunc: (dy: tf.Tensor) => [dy, tf.onesLike(aux)] };
});

export const injectLoss = <T extends tf.Tensor>(value: T, aux: tf.Scalar): T => injectLossOp(value, aux) as T;

/**
 * `a @ b` with no gradient to either side (tfjs has no stopGradient). Done as one custom node
 * so the backward pass skips the matmul instead of running it only to multiply by zero.
 */
const detachedMatMulOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b] = args as [tf.Tensor2D, tf.Tensor2D];
  return { value: tf.matMul(a, b), gradFunc: () => [tf.zerosLike(a), tf.zerosLike(b)] };
});

export const detachedMatMul = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D => detachedMatMulOp(a, b) as tf.Tensor2D;

/**
 * `a @ b` with a gradient to `b` only: the TRAINING objective of a kind that reads the layer's
 * input trains its encoder on the input without pushing anything into the layers below. `a`
 * gets a zero gradient (tfjs has no stopGradient), which costs one add where it meets the
 * host's own gradient; `b`'s is an explicit transpose and plain matmul, as in `matMul`.
 */
const matMulDetachedAOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa] = saved as [tf.Tensor2D];
      return [tf.zerosLike(sa), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

export const matMulDetachedA = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D => matMulDetachedAOp(a, b) as tf.Tensor2D;

/**
 * The identity, except that its gradient is shown to `onGradient` on the way back. Telemetry
 * uses it to read gradient norms from the very backward pass that trains the network.
 * `onGradient` runs inside the backward pass's tidy: whatever it keeps it must `tf.keep`.
 */
export const tapGradient = <T extends tf.Tensor>(x: T, onGradient: (dy: tf.Tensor) => void): T =>
  tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input] = args as [tf.Tensor];
    return {
      value: tf.clone(input),
      gradFunc: (dy: tf.Tensor) => {
        onGradient(dy);
        return dy;
      },
    };
  })(x) as T;
