import * as tf from "@tensorflow/tfjs-core";
import { initializers } from "@tensorflow/tfjs-layers";
import { KasminaConfigError } from "./errors.ts";
import { matMul } from "./gradient-ops.ts";

/**
 * The host half of a Kasmina layer: a Dense layer computed the way tfjs-layers' Dense computes
 * it (fused matmul for the activations Dense fuses, matmul + bias + activation otherwise), so a
 * Kasmina layer with no grafted seed returns exactly what `tf.layers.dense` would.
 */
export const HOST_ACTIVATIONS = ["linear", "relu", "relu6", "elu", "selu", "sigmoid", "tanh", "softplus", "softsign", "softmax", "swish"] as const;
/** An activation a KasminaLayer's host part accepts (`KasminaLayerArgs.activation`): the listed ones of tfjs-layers' Dense. */
export type HostActivation = (typeof HOST_ACTIVATIONS)[number];

export const INITIALIZERS = ["glorotUniform", "glorotNormal", "heNormal", "heUniform", "leCunNormal", "leCunUniform", "zeros", "ones"] as const;
export type InitializerName = (typeof INITIALIZERS)[number];

/** The activations tfjs-layers' Dense hands to the fused kernel (mapActivationToFusedKernel). */
const FUSED: ReadonlySet<string> = new Set(["linear", "relu", "elu"]);

const apply: Record<HostActivation, (x: tf.Tensor) => tf.Tensor> = {
  linear: (x) => x,
  relu: tf.relu,
  relu6: tf.relu6,
  elu: tf.elu,
  selu: tf.selu,
  sigmoid: tf.sigmoid,
  tanh: tf.tanh,
  softplus: tf.softplus,
  softsign: (x) => tf.div(x, tf.add(1, tf.abs(x))),
  softmax: (x) => tf.softmax(x),
  swish: (x) => tf.mul(x, tf.sigmoid(x)),
};

export const checkActivation = (name: string): HostActivation => {
  if ((HOST_ACTIVATIONS as readonly string[]).includes(name)) return name as HostActivation;
  throw new KasminaConfigError({ reason: "unknown_activation", message: `unknown activation "${name}"; one of ${HOST_ACTIVATIONS.join(", ")}` });
};

export const checkInitializer = (name: string): InitializerName => {
  if ((INITIALIZERS as readonly string[]).includes(name)) return name as InitializerName;
  throw new KasminaConfigError({ reason: "unknown_initializer", message: `unknown initializer "${name}"; one of ${INITIALIZERS.join(", ")}` });
};

/** tfjs-layers exports its Initializer type only from a deep path that Node's resolution (and a consumer's TypeScript) cannot reach. */
type Initializer = ReturnType<typeof initializers.ones>;

export const initializerOf = (name: InitializerName, seed?: number): Initializer => {
  switch (name) {
    case "zeros":
      return initializers.zeros();
    case "ones":
      return initializers.ones();
    default:
      return initializers[name](seed === undefined ? {} : { seed });
  }
};

/**
 * The fused Dense forward pass (the very kernel tf.layers.dense runs), with a backward pass that
 * avoids matMul's transpose flags (gradient-ops.ts says why): on wasm this makes a training step
 * of a 1024-unit layer several times faster than tf.layers.dense's.
 */
const fusedDense = (activation: "linear" | "relu" | "elu", withBias: boolean) =>
  tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, kernel] = args as [tf.Tensor2D, tf.Tensor2D];
    const bias = withBias ? (args[2] as tf.Tensor1D) : undefined;
    const save = args[withBias ? 3 : 2] as tf.GradSaveFunc;
    const y = tf.fused.matMul({ a: x, b: kernel, bias, activation });
    save([x, kernel, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sk, sy] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        // relu and elu derivatives from the output: relu' = [y > 0], elu' = y > 0 ? 1 : y + 1.
        const dz = (
          activation === "relu" ? tf.mul(dy, tf.step(sy)) : activation === "elu" ? tf.mul(dy, tf.where(tf.greater(sy, 0), tf.onesLike(sy), tf.add(sy, 1))) : dy
        ) as tf.Tensor2D;
        const grads: tf.Tensor[] = [tf.matMul(dz, tf.transpose(sk)), tf.matMul(tf.transpose(sx), dz)];
        if (withBias) grads.push(tf.sum(dz, 0));
        return grads;
      },
    };
  });

/** `learning`: a gradient will be taken (otherwise the plain fused kernel runs, exactly as in Dense). */
export const hostForward = (x: tf.Tensor2D, kernel: tf.Tensor2D, bias: tf.Tensor1D | null, activation: HostActivation, learning: boolean): tf.Tensor2D => {
  if (FUSED.has(activation) && !learning) {
    return tf.fused.matMul({ a: x, b: kernel, bias: bias ?? undefined, activation: activation as tf.fused.Activation }) as tf.Tensor2D;
  }
  if (FUSED.has(activation)) {
    const op = fusedDense(activation as "linear" | "relu" | "elu", bias !== null);
    return (bias ? op(x, kernel, bias) : op(x, kernel)) as tf.Tensor2D;
  }
  const linear = learning ? matMul(x, kernel) : tf.fused.matMul({ a: x, b: kernel });
  return apply[activation](bias ? tf.add(linear, bias) : linear) as tf.Tensor2D;
};
