import * as tf from "@tensorflow/tfjs-core";

/**
 * The telemetry tensor: one row per seed, one column per metric, filled by the same forward and
 * backward pass that trains the network, and read out of the backend once per window (the
 * trainer arms the layer every K steps), never per step and never per seed.
 *
 * Columns (a metric that does not apply to a seed in its state is NaN, so a guard comparing
 * it, e.g. `reconstruction_loss <= 0.01`, is false rather than fooled by a zero; publishers
 * drop NaN entries):
 * - mean, variance, sparsity (fraction of |x| <= 1e-6), activation_norm (sqrt of the mean over
 *   the batch of the chunk's squared L2 norm), all of the chunk the layer outputs;
 * - drift: ||alpha * blueprint|| / ||host chunk||, how far the graft moves the chunk;
 * - alpha: the alpha the pass blended with;
 * - gradient_norm: ||dLoss/dchunk|| over the batch, where the loss is sensitive to this chunk;
 * - blueprint_gradient_norm: norm of the gradient on the seed's blueprint parameters, for
 *   seeds whose blueprint learns in their state;
 * - reconstruction_loss: the TRAINING objective (seed-forward.ts), for seeds in TRAINING;
 * - performance_delta: -<dLoss/dchunk, alpha * blueprint>, the first-order estimate of how
 *   much the loss would rise without this seed's graft (> 0: the graft helps), in loss units
 *   of the batch, for seeds with alpha > 0.
 */
export const TELEMETRY_COLUMNS = [
  "mean",
  "variance",
  "sparsity",
  "activation_norm",
  "drift",
  "alpha",
  "gradient_norm",
  "blueprint_gradient_norm",
  "reconstruction_loss",
  "performance_delta",
] as const;
export type TelemetryColumn = (typeof TELEMETRY_COLUMNS)[number];

/**
 * Where a window's telemetry goes: `rows` is `[seeds x columns]` row-major, `columns` names
 * the columns in order (TELEMETRY_COLUMNS, unless the trainer renamed one: see its
 * `performanceDelta` option). Called once per layer per window.
 */
export type TelemetrySink = (layerId: string, step: number, rows: Float32Array, columns: readonly string[]) => void;

const SPARSITY_EPSILON = 1e-6;
const columnIndex = new Map(TELEMETRY_COLUMNS.map((c, i) => [c, i]));

/** Column sums of `[rows, seeds]` as `[seeds]`: a matmul with ones, which every backend runs fast. */
const columnSum = (x: tf.Tensor2D): tf.Tensor1D => tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);

const nanWhereNot = (mask: tf.Tensor1D, values: tf.Tensor1D): tf.Tensor1D => tf.where(mask, values, tf.fill(values.shape, Number.NaN));

/** One window's worth of per-seed columns, gathered while a pass runs. Owns its tensors. */
export class TelemetryCapture {
  private readonly columns = new Map<TelemetryColumn, tf.Tensor1D>();
  private blueprintGradSq: tf.Tensor1D | null = null;
  private learnMask: tf.Tensor1D | null = null;
  /** Forward tensors the backward pass still needs after the forward pass's tidy has ended. */
  private readonly held: tf.Tensor[] = [];
  private heldBlueprint: tf.Tensor2D | null = null;
  private heldBlended: tf.Tensor1D | null = null;

  constructor(readonly numSeeds: number) {}

  /** Statistics of the forward pass. All inputs are `[batch * chunk, seeds]` (seeds last). */
  recordForward(args: {
    readonly output: tf.Tensor2D;
    readonly host: tf.Tensor2D;
    readonly blueprint: tf.Tensor2D | null;
    readonly batch: number;
    readonly alpha: tf.Tensor1D;
    readonly learns: tf.Tensor1D;
    readonly blended: tf.Tensor1D;
  }): void {
    const { output, host, blueprint, batch } = args;
    const rows = output.shape[0];
    const sum = columnSum(output);
    const mean = tf.div(sum, rows) as tf.Tensor1D;
    const centred = tf.sub(output, tf.reshape(mean, [1, this.numSeeds]));
    this.set("mean", mean);
    this.set("variance", tf.div(columnSum(tf.square(centred) as tf.Tensor2D), rows) as tf.Tensor1D);
    this.set("sparsity", tf.div(columnSum(tf.cast(tf.lessEqual(tf.abs(output), SPARSITY_EPSILON), "float32") as tf.Tensor2D), rows) as tf.Tensor1D);
    this.set("activation_norm", tf.sqrt(tf.div(columnSum(tf.square(output) as tf.Tensor2D), batch)) as tf.Tensor1D);
    const drift = blueprint
      ? (tf.sqrt(tf.div(columnSum(tf.square(blueprint) as tf.Tensor2D), tf.add(columnSum(tf.square(host) as tf.Tensor2D), 1e-12))) as tf.Tensor1D)
      : (tf.zeros([this.numSeeds]) as tf.Tensor1D);
    this.set("drift", drift);
    this.set("alpha", tf.clone(args.alpha));
    this.learnMask?.dispose();
    this.learnMask = this.hold(args.learns);
    this.heldBlueprint = blueprint ? this.hold(blueprint) : null;
    this.heldBlended = this.hold(args.blended);
  }

  /** The gradient arriving at the layer's output, `[batch * chunk, seeds]`, from the same step's backward pass. */
  recordOutputGradient(dy: tf.Tensor2D): void {
    this.set("gradient_norm", tf.sqrt(columnSum(tf.square(dy) as tf.Tensor2D)) as tf.Tensor1D);
    if (this.heldBlueprint && this.heldBlended) {
      const delta = tf.neg(columnSum(tf.mul(dy, this.heldBlueprint) as tf.Tensor2D)) as tf.Tensor1D;
      this.set("performance_delta", nanWhereNot(this.heldBlended, delta));
    }
  }

  /** A kept copy of `t` that lives until this capture is assembled or disposed. */
  hold<T extends tf.Tensor>(t: T): T {
    const copy = tf.keep(tf.clone(t));
    this.held.push(copy);
    return copy;
  }

  /** Squared gradient norms `[seeds]` of some blueprint parameters; summed over every part that reports. */
  addBlueprintGradientSq(perSeed: tf.Tensor1D): void {
    const next = this.blueprintGradSq ? tf.add(this.blueprintGradSq, perSeed) : tf.clone(perSeed);
    this.blueprintGradSq?.dispose();
    this.blueprintGradSq = tf.keep(next as tf.Tensor1D);
  }

  recordReconstruction(perSeed: tf.Tensor1D, reconstructing: tf.Tensor1D): void {
    this.set("reconstruction_loss", nanWhereNot(reconstructing, perSeed));
  }

  /** `[seeds, columns]` in TELEMETRY_COLUMNS order, NaN where nothing was recorded. Empties the capture. */
  assemble(): tf.Tensor2D {
    const result = tf.tidy(() => {
      if (this.blueprintGradSq) {
        const norm = tf.sqrt(this.blueprintGradSq) as tf.Tensor1D;
        this.columns.set("blueprint_gradient_norm", this.learnMask ? nanWhereNot(this.learnMask, norm) : norm);
      }
      const nan = tf.fill([this.numSeeds], Number.NaN);
      const cols = TELEMETRY_COLUMNS.map((c) => this.columns.get(c) ?? nan);
      return tf.stack(cols, 1) as tf.Tensor2D;
    });
    this.dispose();
    return result;
  }

  dispose(): void {
    for (const t of this.columns.values()) t.dispose();
    this.columns.clear();
    this.blueprintGradSq?.dispose();
    this.blueprintGradSq = null;
    for (const t of this.held) t.dispose();
    this.held.length = 0;
    this.learnMask = null;
    this.heldBlueprint = null;
    this.heldBlended = null;
  }

  private set(column: TelemetryColumn, value: tf.Tensor1D): void {
    this.columns.get(column)?.dispose();
    this.columns.set(column, tf.keep(value));
  }
}

/** The value of `column` for `seed` in a window's rows. */
export const telemetryValue = (rows: Float32Array, seed: number, column: TelemetryColumn): number =>
  rows[seed * TELEMETRY_COLUMNS.length + columnIndex.get(column)!]!;
