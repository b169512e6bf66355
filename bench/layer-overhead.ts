/**
 * layer-overhead: the forward pass of a Kasmina layer against a plain Dense layer of the same
 * shape (1024 -> 1024, 64 seeds, batch 256, wasm backend), both holding the same kernel and bias.
 * Arms, measured alternately in one run, order rotated every round, medians reported:
 *   dense         tf.layers.dense, the baseline
 *   dormant       Kasmina layer, every seed DORMANT
 *   active25      Kasmina layer, 25 % of the seeds FINE_TUNING (alpha 1, residual_mlp, non-zero weights)
 *   active25_mix  the same with the three built-in blueprint kinds mixed
 * Overheads are the median over rounds of (arm / dense - 1) within the round, which cancels the
 * machine's drift. A training step (forward + backward through tf.variableGrads) is measured the
 * same way for dense, dormant and active25, with fewer rounds.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { blueprintIndex, initBackend, KasminaLayer, listBlueprints } from "../src/kasmina/index.ts";
import { median, round, type Benchmark } from "./harness.ts";

type Arm = { readonly name: string; readonly run: () => void };

const kasmina = (units: number, numSeeds: number, kernel: tf.Tensor, bias: tf.Tensor, active: number, kinds: readonly string[]): KasminaLayer => {
  const layer = new KasminaLayer({ units, numSeeds, activation: "relu", seed: 1 });
  layer.build([null, kernel.shape[0]!]);
  layer.setWeights(layer.getWeights().map((w, i) => (i === 0 ? kernel : i === 1 ? bias : w)));
  const step = Math.floor(numSeeds / active);
  const seeds = Array.from({ length: active }, (_, i) => i * step);
  seeds.forEach((s, i) => layer.table.write(s, { state: "FINE_TUNING", blueprint: blueprintIndex(kinds[i % kinds.length]!) }));
  if (seeds.length > 0) {
    // Real weights, decoders included: a fresh blueprint's zero decoder would be the same work but a less honest output.
    const params = layer.readSeedParams(seeds).map((p) => p.map((_, j) => Math.sin(j) * 0.05));
    layer.restoreSeeds(seeds, params, seeds.map((s) => layer.table.row(s)));
  }
  return layer;
};

/** Milliseconds per call of `run`, over `reps` calls. wasm (and tfjs-node) kernels run synchronously, so no readback is needed. */
const timeOf = (run: () => void, reps: number): number => {
  const start = performance.now();
  for (let i = 0; i < reps; i++) run();
  return (performance.now() - start) / reps;
};

/** Rounds of every arm, order rotated per round; per arm the per-round times. */
const alternate = (arms: readonly Arm[], rounds: number, reps: number, warmup: number, log: (m: string) => void): Map<string, number[]> => {
  const times = new Map(arms.map((a) => [a.name, [] as number[]]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (let i = 0; i < arms.length; i++) {
      const arm = arms[(i + r) % arms.length]!;
      const ms = timeOf(arm.run, reps);
      if (r >= warmup) times.get(arm.name)!.push(ms);
    }
    if (r >= warmup && (r - warmup) % 10 === 9) log(`round ${r - warmup + 1}/${rounds}`);
  }
  return times;
};

/** Median over rounds of (arm / baseline - 1), in percent. */
const overheadPct = (times: Map<string, number[]>, arm: string, baseline: string): number => {
  const a = times.get(arm)!;
  const b = times.get(baseline)!;
  return round(median(a.map((t, i) => (t / b[i]! - 1) * 100)), 2);
};

const layerOverhead: Benchmark = async ({ quick, log }) => {
  const backend = await initBackend(process.env.ESPER_BACKEND ?? "wasm");
  log(`backend ${backend.active}${backend.fallbackReason ? ` (${backend.fallbackReason})` : ""}`);
  const [inputs, units, numSeeds, batch] = quick ? [128, 128, 16, 32] : [1024, 1024, 64, 256];
  const [rounds, reps, trainRounds] = quick ? [3, 1, 2] : [30, 3, 12];
  const x = tf.randomNormal([batch, inputs], 0, 1, "float32", 1);

  const dense = tfl.layers.dense({ units, activation: "relu", kernelInitializer: "glorotNormal", biasInitializer: "randomNormal" });
  dense.build([null, inputs]);
  const [kernel, bias] = dense.getWeights() as [tf.Tensor, tf.Tensor];
  const active = numSeeds / 4;
  const layers = {
    dormant: kasmina(units, numSeeds, kernel, bias, 0, []),
    active25: kasmina(units, numSeeds, kernel, bias, active, ["residual_mlp"]),
    active25_mix: kasmina(units, numSeeds, kernel, bias, active, listBlueprints().slice(0, 3).map((k) => k.id)),
  };
  const forward = (layer: tfl.layers.Layer) => () => tf.tidy(() => layer.apply(x) as tf.Tensor).dispose();
  const check = tf.tidy(() => tf.max(tf.abs(tf.sub(layers.dormant.apply(x) as tf.Tensor, dense.apply(x) as tf.Tensor))).dataSync()[0]!);
  const activeDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(layers.active25.apply(x) as tf.Tensor, dense.apply(x) as tf.Tensor))).dataSync()[0]!);

  log(`forward: ${rounds} rounds x ${reps} passes per arm, ${inputs} -> ${units}, ${numSeeds} seeds, batch ${batch}`);
  const fwd = alternate(
    [
      { name: "dense", run: forward(dense) },
      { name: "dormant", run: forward(layers.dormant) },
      { name: "active25", run: forward(layers.active25) },
      { name: "active25_mix", run: forward(layers.active25_mix) },
    ],
    rounds,
    reps,
    quick ? 1 : 3,
    log,
  );

  const trainStep = (layer: tfl.layers.Layer) => () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, layer.trainableWeights.map((w) => w.read() as tf.Variable));
      tf.dispose([value, grads]);
    });
  log(`training step: ${trainRounds} rounds`);
  const train = alternate(
    [
      { name: "dense", run: trainStep(dense) },
      { name: "dormant", run: trainStep(layers.dormant) },
      { name: "active25", run: trainStep(layers.active25) },
    ],
    trainRounds,
    1,
    1,
    log,
  );

  const ms = (m: Map<string, number[]>, arm: string): number => round(median(m.get(arm)!), 2);
  return {
    backend: backend.active,
    inputs,
    units,
    seeds: numSeeds,
    batch,
    rounds,
    dense_ms: ms(fwd, "dense"),
    kasmina_ms: ms(fwd, "dormant"),
    active25_ms: ms(fwd, "active25"),
    active25_mix_ms: ms(fwd, "active25_mix"),
    dormant_overhead_pct: overheadPct(fwd, "dormant", "dense"),
    active25_overhead_pct: overheadPct(fwd, "active25", "dense"),
    active25_mix_overhead_pct: overheadPct(fwd, "active25_mix", "dense"),
    train_dense_ms: ms(train, "dense"),
    train_dormant_overhead_pct: overheadPct(train, "dormant", "dense"),
    train_active25_overhead_pct: overheadPct(train, "active25", "dense"),
    dormant_max_abs_diff: check,
    active25_max_abs_diff: round(activeDiff, 6),
  };
};

export default layerOverhead;
