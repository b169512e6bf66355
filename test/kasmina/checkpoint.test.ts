import * as tf from "@tensorflow/tfjs-core";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  blueprintIndex,
  CheckpointError,
  checkpointPath,
  KasminaLayer,
  restoreCheckpoint,
  saveCheckpoint,
  type CheckpointEventFields,
} from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "esper-kasmina-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const grown = (layerId = "enc", numSeeds = 4): KasminaLayer => {
  const layer = new KasminaLayer({ units: numSeeds * 4, numSeeds, activation: "relu", layerId, seed: 6 });
  layer.build([null, 5]);
  layer.table.write(0, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp"), epochsInState: 12, errorCount: 1 });
  layer.table.write(1, { state: "GRAFTING", blueprint: blueprintIndex("residual_wide_tanh"), alpha: 0.25, strategy: "momentum" });
  layer.table.write(2, { state: "TRAINING", blueprint: blueprintIndex("residual_bottleneck") });
  scrambleBlueprints(layer, [0, 1, 2, 3]);
  return layer;
};

const reasonOf = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    return (error as CheckpointError).reason;
  }
  throw new Error("expected a CheckpointError");
};

describe("checkpoints", () => {
  it("round-trips a whole layer exactly: table rows, every blueprint weight, and the output", async () => {
    const layer = grown();
    const x = randomInput(3, 5);
    const events: CheckpointEventFields[] = [];
    const created = await saveCheckpoint(layer, { dir, checkpointId: "c1", onEvent: (e) => events.push(e) });
    const table = layer.table.snapshot();
    const params = layer.readSeedParams([0, 1, 2, 3]);
    const output = (layer.apply(x) as tf.Tensor).dataSync().slice();

    layer.table.write(0, { state: "CULLED" });
    layer.table.write(3, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp") });
    scrambleBlueprints(layer, [1, 2], 99);
    expect(maxAbsDiff((layer.apply(x) as tf.Tensor).dataSync(), output)).toBeGreaterThan(0);

    const recovered = await restoreCheckpoint(layer, { dir, checkpointId: "c1" }, { onEvent: (e) => events.push(e) });
    expect({ ...layer.table.snapshot() }).toEqual(table);
    layer.readSeedParams([0, 1, 2, 3]).forEach((p, k) => expect(maxAbsDiff(p, params[k]!)).toBe(0));
    expect(maxAbsDiff((layer.apply(x) as tf.Tensor).dataSync(), output)).toBe(0);

    expect(created).toMatchObject({ layer_id: "enc", seed_id: null, checkpoint_id: "c1", operation: "created", success: true, error: null });
    expect(created.checkpoint_size_bytes).toBe((await readFile(checkpointPath(dir, "enc", "c1"))).length);
    expect(recovered).toMatchObject({ operation: "recovered", success: true, checkpoint_size_bytes: created.checkpoint_size_bytes });
    expect(events.map((e) => e.operation)).toEqual(["created", "recovered"]);
  });

  it("checkpoints one seed and restores only that seed", async () => {
    const layer = grown();
    await saveCheckpoint(layer, { dir, checkpointId: "seed1", seedId: 1 });
    const row = layer.table.row(1);
    const params = layer.readSeedParams([1]);
    const other = layer.readSeedParams([0]);
    layer.table.write(1, { state: "ROLLED_BACK" });
    scrambleBlueprints(layer, [0], 42);
    const otherAfter = layer.readSeedParams([0]);
    const recovered = await restoreCheckpoint(layer, { dir, checkpointId: "seed1" });
    expect(recovered.seed_id).toBe(1);
    expect(layer.table.row(1)).toEqual(row);
    layer.readSeedParams([1]).forEach((p, k) => expect(maxAbsDiff(p, params[k]!)).toBe(0));
    // Seed 0 keeps what it had since, not what it had at the checkpoint.
    layer.readSeedParams([0]).forEach((p, k) => expect(maxAbsDiff(p, otherAfter[k]!)).toBe(0));
    expect(maxAbsDiff(otherAfter[0]!, other[0]!)).toBeGreaterThan(0);
  });

  it("writes atomically: only the final file remains, no temporary", async () => {
    await saveCheckpoint(grown(), { dir, checkpointId: "c1" });
    expect(await readdir(dir)).toEqual(["enc.c1.kasmina"]);
  });

  it("refuses a file with one flipped byte (sha256), changing nothing, and reports the failure", async () => {
    const layer = grown();
    await saveCheckpoint(layer, { dir, checkpointId: "c1" });
    const path = checkpointPath(dir, "enc", "c1");
    const bytes = await readFile(path);
    bytes[bytes.length - 100]! ^= 0x01;
    await writeFile(path, bytes);
    const table = layer.table.snapshot();
    const events: CheckpointEventFields[] = [];
    expect(await reasonOf(restoreCheckpoint(layer, { dir, checkpointId: "c1" }, { onEvent: (e) => events.push(e) }))).toBe("checksum");
    expect(layer.table.snapshot()).toEqual(table);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ operation: "recovered", success: false });
    expect(events[0]!.error).toMatch(/sha256/);
  });

  it("refuses a truncated file, a file that is not a checkpoint, and a missing one", async () => {
    const layer = grown();
    await saveCheckpoint(layer, { dir, checkpointId: "c1" });
    const path = checkpointPath(dir, "enc", "c1");
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 10));
    expect(await reasonOf(restoreCheckpoint(layer, path))).toBe("checksum");
    await writeFile(path, Buffer.from('{"not": "a checkpoint"}'));
    expect(await reasonOf(restoreCheckpoint(layer, path))).toBe("format");
    expect(await reasonOf(restoreCheckpoint(layer, { dir, checkpointId: "nope" }))).toBe("io");
  });

  it("refuses another layer's checkpoint, and one of this layer id with other shapes", async () => {
    const other = grown("dec");
    await saveCheckpoint(other, { dir, checkpointId: "c1" });
    const layer = grown("enc");
    expect(await reasonOf(restoreCheckpoint(layer, checkpointPath(dir, "dec", "c1")))).toBe("foreign_layer");
    const wider = grown("enc", 8);
    await saveCheckpoint(wider, { dir, checkpointId: "c2" });
    expect(await reasonOf(restoreCheckpoint(layer, { dir, checkpointId: "c2" }))).toBe("shape_mismatch");
  });

  it("refuses a checkpoint id that is not a plain file name", async () => {
    expect(await reasonOf(saveCheckpoint(grown(), { dir, checkpointId: "../escape" }))).toBe("bad_checkpoint_id");
  });

  it("refuses a seed the layer does not have as unknown_seed, not as a write failure, and writes nothing", async () => {
    const layer = grown();
    for (const seedId of [layer.numSeeds, -1, 1.5]) expect(await reasonOf(saveCheckpoint(layer, { dir, checkpointId: "s", seedId }))).toBe("unknown_seed");
    expect(existsSync(checkpointPath(dir, layer.layerId, "s"))).toBe(false);
  });
});
