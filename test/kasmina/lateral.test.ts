import * as tf from "@tensorflow/tfjs-core";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  bankLayout,
  blueprintAt,
  blueprintIndex,
  blueprintParameterCount,
  BUILTIN_BLUEPRINTS,
  CheckpointError,
  KasminaConfigError,
  KasminaLayer,
  registerBlueprint,
  restoreCheckpoint,
  saveCheckpoint,
  telemetryValue,
  updateBlueprint,
} from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, reconstructionLosses, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

/**
 * Blueprint kinds that read the layer's input (lateral_*): a branch input -> hidden -> chunk
 * beside the host's units, blended into the seed's chunk like any blueprint.
 */
const INPUTS = 5;
const KINDS = ["residual_mlp", "lateral_mlp", "lateral_wide", "residual_wide_tanh"];

const lateralLayer = (numSeeds = 4, chunk = 2, inputs = INPUTS, layerId = "narrow"): KasminaLayer => {
  const layer = new KasminaLayer({ units: numSeeds * chunk, numSeeds, activation: "relu", blueprints: KINDS, layerId, seed: 4 });
  layer.build([null, inputs]);
  return layer;
};

const forward = (layer: KasminaLayer, x: tf.Tensor, training = false): Float32Array =>
  tf.tidy(() => (layer.apply(x, { training }) as tf.Tensor).dataSync() as Float32Array).slice();

const hostOf = (layer: KasminaLayer, x: tf.Tensor2D): Float32Array =>
  tf.tidy(() => {
    const [kernel, bias] = layer.getWeights();
    return tf.relu(tf.add(tf.matMul(x, kernel!), bias!)).dataSync() as Float32Array;
  }).slice();

/**
 * The blend the slow way, one seed at a time, reading each seed's row: for a lateral seed
 * chunk + alpha * (act(x E + e) D + d), for a residual one the same with the chunk in place of x.
 */
const slowBlend = (layer: KasminaLayer, x: Float32Array, host: Float32Array, batch: number, alphas: readonly number[]): Float32Array => {
  const { chunk, numSeeds, units } = layer;
  const out = host.slice();
  for (let s = 0; s < numSeeds; s++) {
    if (alphas[s] === 0) continue;
    const k = layer.kindOf(layer.table.blueprint[s]!);
    const { hidden: h, input: n, sizes, kind } = layer.layouts[k]!;
    const row = layer.readSeedParams([s])[k]!;
    const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const [encW, encB, decW, decB] = offsets.map((o, i) => row.subarray(o, o + sizes[i]!));
    for (let b = 0; b < batch; b++) {
      const source = kind.reads === "input" ? x.subarray(b * n, (b + 1) * n) : host.subarray(b * units + s * chunk, b * units + (s + 1) * chunk);
      const hidden = Array.from({ length: h }, (_, j) => {
        let acc = encB![j]!;
        for (let i = 0; i < n; i++) acc += source[i]! * encW![i * h + j]!;
        return kind.activation === "tanh" ? Math.tanh(acc) : Math.max(0, acc);
      });
      for (let c = 0; c < chunk; c++) {
        let acc = decB![c]!;
        for (let j = 0; j < h; j++) acc += hidden[j]! * decW![j * chunk + c]!;
        out[b * units + s * chunk + c] = host[b * units + s * chunk + c]! + alphas[s]! * acc;
      }
    }
  }
  return out;
};

describe("blueprint kinds that read the layer's input", () => {
  it("are appended after the residual kinds, so existing registry indices keep their meaning", () => {
    expect(BUILTIN_BLUEPRINTS.map((k) => k.id)).toEqual(["residual_bottleneck", "residual_mlp", "residual_wide_tanh", "lateral_mlp", "lateral_wide"]);
    expect(blueprintAt(blueprintIndex("lateral_mlp"))).toMatchObject({ reads: "input", activation: "relu", hiddenPerChunk: 8 });
    expect(blueprintAt(blueprintIndex("lateral_wide"))).toMatchObject({ reads: "input", activation: "relu", hiddenPerChunk: 16 });
  });

  it("registerBlueprint validates `reads` and counts it as part of the definition", () => {
    const kind = { id: "test_lateral_tanh", hiddenPerChunk: 3, activation: "tanh", reads: "input", description: "" } as const;
    const index = registerBlueprint(kind);
    expect(registerBlueprint({ ...kind })).toBe(index);
    const reasonOf = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        expect(error).toBeInstanceOf(KasminaConfigError);
        return (error as KasminaConfigError).reason;
      }
      return "accepted";
    };
    expect(reasonOf(() => registerBlueprint({ ...kind, reads: "chunk" }))).toBe("duplicate_blueprint");
    expect(reasonOf(() => registerBlueprint({ ...kind, reads: undefined }))).toBe("duplicate_blueprint");
    expect(reasonOf(() => registerBlueprint({ ...kind, id: "test_bad_source", reads: "output" as never }))).toBe("bad_blueprint");
    // A residual kind registered without `reads` is the same definition as one that says "chunk".
    const residual = { id: "test_residual", hiddenPerChunk: 1, activation: "relu", description: "" } as const;
    expect(registerBlueprint({ ...residual, reads: "chunk" })).toBe(registerBlueprint(residual));
  });

  it("lays out a bank row as encoder [input, hidden], its bias, decoder, decoder bias, reconstruction decoder; the input width is required", () => {
    const kind = blueprintAt(blueprintIndex("lateral_mlp"))!;
    expect(() => bankLayout(kind, 2)).toThrow(KasminaConfigError);
    const layout = bankLayout(kind, 2, 16);
    expect(layout).toMatchObject({ reads: "input", chunk: 2, input: 16, hidden: 16, sizes: [256, 16, 32, 2, 32], width: 338 });
    expect(bankLayout(blueprintAt(blueprintIndex("residual_mlp"))!, 2, 16)).toMatchObject({ reads: "chunk", input: 2, hidden: 4, sizes: [8, 4, 8, 2, 8] });
  });

  it("are held only when named, and a layer that holds one knows its layouts once built", () => {
    const plain = new KasminaLayer({ units: 8, numSeeds: 4 });
    expect(plain.blueprintIds.slice(0, 3)).toEqual(["residual_bottleneck", "residual_mlp", "residual_wide_tanh"]);
    expect(plain.blueprintIds.map((id) => blueprintAt(blueprintIndex(id))!.reads ?? "chunk")).not.toContain("input");
    const layer = new KasminaLayer({ units: 8, numSeeds: 4, blueprints: KINDS });
    expect(() => layer.layouts).toThrow(KasminaConfigError);
    layer.build([null, 7]);
    expect(layer.inputDim).toBe(7);
    expect(layer.layouts.map((l) => l.width)).toEqual([bankLayout(blueprintAt(1)!, 2).width, 7 * 16 + 16 + 32 + 2 + 32, 7 * 32 + 32 + 64 + 2 + 64, bankLayout(blueprintAt(2)!, 2).width]);
    expect(layer.getWeights().map((w) => w.shape)).toContainEqual([4, layer.layouts[1]!.width]);
  });
});

describe("the forward pass of an input-reading seed", () => {
  it("blends act(x E + e) D + d into the chunk exactly as a per-seed reference does, mixed with residual seeds", () => {
    const layer = lateralLayer(6);
    const rows = [
      { state: "GRAFTING", blueprint: "lateral_mlp", alpha: 0.3 },
      { state: "FINE_TUNING", blueprint: "lateral_wide", alpha: 0 },
      { state: "FOSSILIZED", blueprint: "lateral_mlp", alpha: 0 },
      { state: "EVALUATING", blueprint: "residual_mlp", alpha: 0 },
      { state: "DORMANT", blueprint: "lateral_wide", alpha: 0.9 },
      { state: "STABILIZATION", blueprint: "residual_wide_tanh", alpha: 0 },
    ] as const;
    rows.forEach((r, s) => layer.table.write(s, { state: r.state, blueprint: blueprintIndex(r.blueprint), alpha: r.alpha }));
    scrambleBlueprints(layer, [0, 1, 2, 3, 4, 5]);
    const x = randomInput(7, INPUTS);
    const expected = slowBlend(layer, x.dataSync() as Float32Array, hostOf(layer, x), 7, [0.3, 1, 1, 1, 0, 1]);
    expect(maxAbsDiff(forward(layer, x), expected)).toBeLessThanOrEqual(1e-5);
    // The training pass (custom-gradient matmuls, no fused kernel) computes the same.
    expect(maxAbsDiff(forward(layer, x, true), expected)).toBeLessThanOrEqual(1e-5);
  });

  it("starts grafting at exactly the host's function: a fresh seed's output decoder is zero", () => {
    const layer = lateralLayer();
    const x = randomInput(5, INPUTS);
    const before = forward(layer, x);
    layer.table.write(1, { state: "FINE_TUNING", blueprint: blueprintIndex("lateral_wide") });
    layer.table.write(2, { state: "GRAFTING", blueprint: blueprintIndex("lateral_mlp"), alpha: 0.5 });
    expect(maxAbsDiff(forward(layer, x), before)).toBe(0);
  });

  it("passes the task's gradient to the layer's input and to its own rows exactly as tf's own gradients of the reference do", () => {
    const layer = lateralLayer(3);
    layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("lateral_mlp") });
    layer.table.write(1, { state: "EVALUATING", blueprint: blueprintIndex("lateral_mlp") });
    scrambleBlueprints(layer, [0, 1, 2]);
    const x = tf.variable(randomInput(4, INPUTS));
    const weights = tf.randomNormal([4, 6], 0, 1, "float32", 5);
    const k = layer.kindOf(blueprintIndex("lateral_mlp"));
    const { hidden, sizes } = layer.layouts[k]!;
    const rows = layer.readSeedParams([0, 1, 2])[k]!;
    const bank = tf.tensor2d(rows, [3, layer.layouts[k]!.width]);
    const [kernel, bias] = layer.getWeights();
    // The reference: the same function written with tf's own ops and gradients, seed by seed.
    const reference = (xv: tf.Tensor, bv: tf.Tensor) => {
      const host = tf.relu(tf.add(tf.matMul(xv, kernel!), bias!));
      const chunks = [0, 1, 2].map((s) => {
        const hostChunk = tf.slice(host, [0, s * 2], [4, 2]);
        if (s === 2) return hostChunk;
        const [e, eb, d, db] = tf.split(tf.slice(bv, [s, 0], [1, -1]), [...sizes], 1) as tf.Tensor2D[];
        const h = tf.relu(tf.add(tf.matMul(xv, tf.reshape(e!, [INPUTS, hidden])), tf.reshape(eb!, [hidden])));
        return tf.add(hostChunk, tf.add(tf.matMul(h, tf.reshape(d!, [hidden, 2])), tf.reshape(db!, [2])));
      });
      return tf.sum(tf.mul(tf.concat(chunks, 1), weights)) as tf.Scalar;
    };
    const [dxRef, dBankRef] = tf.grads(reference)([x, bank]);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, weights)) as tf.Scalar);
    expect(maxAbsDiff(grads[x.name]!.dataSync(), dxRef!.dataSync())).toBeLessThanOrEqual(1e-4);
    const bankGrad = grads[layer.trainableWeights.find((w) => w.originalName === "blueprints_lateral_mlp")!.name]!;
    const dBank = bankGrad.dataSync();
    const width = layer.layouts[k]!.width;
    // The learning seed's row gets the reference's gradient; the evaluated seed's row none: it reads the frozen anchor.
    expect(maxAbsDiff(dBank.subarray(0, width), dBankRef!.dataSync().subarray(0, width))).toBeLessThanOrEqual(1e-4);
    expect(Array.from(dBank.subarray(width, 2 * width)).every((v) => v === 0)).toBe(true);
  });
});

describe("the TRAINING objective of an input-reading seed", () => {
  it("learns to rebuild the host's chunk from the layer's input while the output stays the host's", () => {
    const layer = lateralLayer(3);
    layer.table.write(0, { state: "TRAINING", blueprint: blueprintIndex("lateral_mlp") });
    layer.table.write(1, { state: "TRAINING", blueprint: blueprintIndex("lateral_wide") });
    const x = randomInput(32, INPUTS, 9);
    const host = hostOf(layer, x);
    const reconstruction = (): number[] => reconstructionLosses(layer, x, [0, 1, 2]);
    const first = reconstruction();
    expect(first[0]).toBeCloseTo(1, 5);
    expect(first[1]).toBeCloseTo(1, 5);
    expect(Number.isNaN(first[2]!)).toBe(true);
    const adam = tf.train.adam(0.02);
    const banks = layer.trainableWeights.filter((w) => w.originalName.startsWith("blueprints_")).map((w) => w.read() as tf.Variable);
    for (let i = 0; i < 60; i++) adam.minimize(() => tf.mul(tf.sum(layer.apply(x, { training: true }) as tf.Tensor), 0) as tf.Scalar, false, banks);
    const last = reconstruction();
    expect(last[0]).toBeLessThan(first[0]! * 0.2);
    expect(last[1]).toBeLessThan(first[1]! * 0.2);
    expect(maxAbsDiff(forward(layer, x, true), host)).toBe(0);
    expect(maxAbsDiff(forward(layer, x), host)).toBe(0);
  });

  it("pushes nothing into the layers below or into the host: the input and the chunk it rebuilds are detached", () => {
    const layer = lateralLayer(2);
    layer.table.write(0, { state: "TRAINING", blueprint: blueprintIndex("lateral_mlp") });
    scrambleBlueprints(layer, [0]); // a fresh reconstruction decoder is zero and would pass no gradient back anyway
    const x = tf.variable(randomInput(6, INPUTS, 2));
    // The task loss is zeroed: the only gradient left is the reconstruction objective's.
    const { grads } = tf.variableGrads(() => tf.mul(tf.sum(layer.apply(x, { training: true }) as tf.Tensor), 0) as tf.Scalar);
    const kernel = layer.trainableWeights.find((w) => w.originalName === "kernel")!;
    const bank = layer.trainableWeights.find((w) => w.originalName === "blueprints_lateral_mlp")!;
    expect(Array.from(grads[x.name]!.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(grads[kernel.name]!.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(grads[bank.name]!.dataSync()).some((v) => v !== 0)).toBe(true);
  });
});

describe("telemetry of an input-reading seed", () => {
  it("reports drift, performance_delta and blueprint_gradient_norm for a graft, reconstruction_loss in TRAINING", () => {
    const layer = lateralLayer(3);
    layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("lateral_mlp") });
    layer.table.write(1, { state: "TRAINING", blueprint: blueprintIndex("lateral_wide") });
    scrambleBlueprints(layer, [0, 1]);
    const x = randomInput(6, INPUTS);
    const host = hostOf(layer, x);
    layer.armTelemetry();
    tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    const rows = layer.takeTelemetry()!.dataSync() as Float32Array;
    const out = forward(layer, x);
    const graft = Array.from({ length: 6 * 2 }, (_, i) => out[Math.floor(i / 2) * 6 + (i % 2)]! - host[Math.floor(i / 2) * 6 + (i % 2)]!);
    const hostChunk = Array.from({ length: 6 * 2 }, (_, i) => host[Math.floor(i / 2) * 6 + (i % 2)]!);
    const norm = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    expect(telemetryValue(rows, 0, "drift")).toBeCloseTo(norm(graft) / norm(hostChunk), 4);
    // loss = sum(output): the first-order delta is -sum(graft).
    expect(telemetryValue(rows, 0, "performance_delta")).toBeCloseTo(-graft.reduce((a, b) => a + b, 0), 3);
    expect(telemetryValue(rows, 0, "blueprint_gradient_norm")).toBeGreaterThan(0);
    expect(telemetryValue(rows, 1, "reconstruction_loss")).toBeGreaterThan(0);
    expect(telemetryValue(rows, 1, "blueprint_gradient_norm")).toBeGreaterThan(0);
    expect(Number.isNaN(telemetryValue(rows, 2, "performance_delta"))).toBe(true);
  });
});

describe("no loop over input-reading seeds", () => {
  const PATTERN = [
    { state: "GRAFTING", blueprint: "lateral_mlp", alpha: 0.5 },
    { state: "FINE_TUNING", blueprint: "lateral_wide", alpha: 0 },
    { state: "TRAINING", blueprint: "lateral_mlp", alpha: 0 },
    { state: "EVALUATING", blueprint: "residual_mlp", alpha: 0 },
    { state: "TRAINING", blueprint: "lateral_wide", alpha: 0 },
    { state: "DORMANT", blueprint: "lateral_mlp", alpha: 0 },
  ] as const;
  const layerOf = (numSeeds: number): KasminaLayer => {
    const layer = lateralLayer(numSeeds, 2, 8);
    for (let s = 0; s < numSeeds; s++) {
      const row = PATTERN[s % PATTERN.length]!;
      layer.table.write(s, { state: row.state, blueprint: blueprintIndex(row.blueprint), alpha: row.alpha });
    }
    layer.seedPlan();
    return layer;
  };
  const kernelsOf = async (f: () => tf.TensorContainer): Promise<string[]> => (await tf.profile(f)).kernelNames;

  it("runs the same kernels for 6 seeds as for 96, in inference and in a training step with telemetry", async () => {
    const x = randomInput(3, 8);
    const inference = (layer: KasminaLayer) => () => tf.tidy(() => layer.apply(x) as tf.Tensor);
    const step = (layer: KasminaLayer) => () =>
      tf.tidy(() => {
        layer.armTelemetry();
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
        return [value, layer.takeTelemetry()!, ...Object.values(grads)];
      });
    const [small, large] = [layerOf(6), layerOf(96)];
    expect(await kernelsOf(inference(large))).toEqual(await kernelsOf(inference(small)));
    expect(await kernelsOf(step(large))).toEqual(await kernelsOf(step(small)));
  });
});

describe("checkpoints and blueprint updates with input-reading seeds", () => {
  it("round-trips a layer with a grafted lateral seed exactly, and refuses the file in a layer of another input width", async () => {
    const dir = await mkdtemp(join(tmpdir(), "esper-lateral-"));
    try {
      const layer = lateralLayer(4, 2, INPUTS, "lat");
      layer.table.write(0, { state: "GRAFTING", blueprint: blueprintIndex("lateral_mlp"), alpha: 0.4 });
      layer.table.write(1, { state: "FOSSILIZED", blueprint: blueprintIndex("lateral_wide") });
      layer.table.write(2, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp") });
      scrambleBlueprints(layer, [0, 1, 2, 3]);
      const x = randomInput(5, INPUTS);
      const output = forward(layer, x);
      const params = layer.readSeedParams([0, 1, 2, 3]);
      const table = layer.table.snapshot();
      await saveCheckpoint(layer, { dir, checkpointId: "c1" });

      layer.table.write(0, { state: "CULLED" });
      scrambleBlueprints(layer, [1, 2], 77);
      expect(maxAbsDiff(forward(layer, x), output)).toBeGreaterThan(0);
      await restoreCheckpoint(layer, { dir, checkpointId: "c1" });
      expect({ ...layer.table.snapshot() }).toEqual(table);
      layer.readSeedParams([0, 1, 2, 3]).forEach((p, k) => expect(maxAbsDiff(p, params[k]!)).toBe(0));
      expect(maxAbsDiff(forward(layer, x), output)).toBe(0);

      const wider = lateralLayer(4, 2, INPUTS + 1, "lat");
      const reason = await restoreCheckpoint(wider, { dir, checkpointId: "c1" }).then(
        () => "restored",
        (error: unknown) => (error as CheckpointError).reason,
      );
      expect(reason).toBe("shape_mismatch");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("swaps a seed to a lateral kind with the output unchanged, and rolls it back exactly when validation fails", async () => {
    const layer = lateralLayer(3);
    layer.table.write(1, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp") });
    scrambleBlueprints(layer, [1]);
    const x = randomInput(4, INPUTS);
    const before = forward(layer, x);
    const params = layer.readSeedParams([1]);
    const swapped = await updateBlueprint(layer, 1, "lateral_wide");
    expect(swapped.ok).toBe(true);
    // The new blueprint's decoder is zero: the seed's chunk is the host's again, the rest unchanged.
    const host = hostOf(layer, x);
    const now = forward(layer, x);
    for (let i = 0; i < now.length; i++) expect(now[i]).toBeCloseTo(i % 6 >= 2 && i % 6 < 4 ? host[i]! : before[i]!, 6);
    const swappedParams = layer.readSeedParams([1]);
    const failed = await updateBlueprint(layer, 1, "lateral_mlp", { validate: () => ({ accuracy: 0.1 }), validationMetrics: { accuracy: 0.5 } });
    expect(failed.rolledBack).toBe(true);
    expect(layer.table.blueprint[1]).toBe(blueprintIndex("lateral_wide"));
    layer.readSeedParams([1]).forEach((p, k) => expect(maxAbsDiff(p, swappedParams[k]!)).toBe(0));
    expect(maxAbsDiff(forward(layer, x), now)).toBe(0);
    expect(maxAbsDiff(params[0]!, swappedParams[0]!)).toBeGreaterThan(0); // the residual bank row was released
  });
});

describe("parameters as a user counts them", () => {
  it("prices one grafted seed: encoder, its bias, decoder, decoder bias; no reconstruction head", () => {
    const lateral = blueprintAt(blueprintIndex("lateral_mlp"))!;
    // The measured setting: Dense 16 -> Kasmina 8 units, 4 seeds of chunk 2: hidden 16 per seed.
    expect(blueprintParameterCount(lateral, 2, 16)).toBe(16 * 16 + 16 + 16 * 2 + 2);
    expect(blueprintParameterCount(blueprintAt(blueprintIndex("lateral_wide"))!, 2, 16)).toBe(16 * 32 + 32 + 32 * 2 + 2);
    // A residual kind reads the chunk: the input width does not enter.
    expect(blueprintParameterCount(blueprintAt(blueprintIndex("residual_mlp"))!, 4, 999)).toBe(4 * 8 + 8 + 8 * 4 + 4);
  });

  it("counts the host's kernel and bias and the blueprints of seeds whose state blends them, whatever the bank holds", () => {
    const layer = lateralLayer(6, 2, 16);
    const host = 16 * 12 + 12;
    expect(layer.parameterCount()).toEqual({ host, blueprints: 0, total: host });
    const price = (id: string) => blueprintParameterCount(blueprintAt(blueprintIndex(id))!, 2, 16);
    layer.table.write(0, { state: "GRAFTING", blueprint: blueprintIndex("lateral_mlp"), alpha: 0 }); // blends from its first step
    layer.table.write(1, { state: "FOSSILIZED", blueprint: blueprintIndex("lateral_wide") });
    layer.table.write(2, { state: "EVALUATING", blueprint: blueprintIndex("residual_mlp") });
    layer.table.write(3, { state: "TRAINING", blueprint: blueprintIndex("lateral_wide") }); // alpha 0: a bank, not model
    layer.table.write(4, { state: "CULLED", blueprint: blueprintIndex("lateral_wide") });
    const blueprints = price("lateral_mlp") + price("lateral_wide") + price("residual_mlp");
    expect(layer.parameterCount()).toEqual({ host, blueprints, total: host + blueprints });
    // An ablation is a measurement, not a smaller model.
    layer.ablate([0, 1]);
    expect(layer.parameterCount().blueprints).toBe(blueprints);
    layer.ablate(null);
  });

  it("prices blueprints from a module that loads no tfjs, so a controller can budget without a tensor library", () => {
    const seen = new Set<string>();
    const imports = (file: string): string[] => {
      if (seen.has(file)) return [];
      seen.add(file);
      const source = readFileSync(file, "utf8");
      const specifiers = [...source.matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]!);
      return specifiers.flatMap((s) => (s.startsWith(".") ? imports(resolve(dirname(file), s)) : [s]));
    };
    const packages = imports(resolve(__dirname, "../../src/kasmina/blueprint-cost.ts"));
    expect(seen.size).toBeGreaterThan(1); // the scan followed the local imports
    expect(packages.filter((p) => p.startsWith("@tensorflow"))).toEqual([]);
  });
});
