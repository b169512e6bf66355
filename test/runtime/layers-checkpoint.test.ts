/**
 * A checkpoint across layers (checkpointLayers): two trainer replicas following two layers owned elsewhere meet at
 * the checkpoint's barrier, agree on a cut of each layer's event stream, and save the same tables at the same
 * offsets; one CheckpointEvent per seed saved, all of one checkpoint id. Restoring (restoreLayers) says `recovered`
 * per seed and follows on from the saved offsets. A participant alone times out with a typed error.
 * On a real Redis, the owner being a system on the same Redis (as an `esper worker` would be).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect, Exit, Scope } from "effect";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { makeRedisBus, type RedisBus } from "../../src/bus/redis-bus.ts";
import { CheckpointError, initBackend, KasminaLayer } from "../../src/kasmina/index.ts";
import { checkpointLayers, restoreLayers } from "../../src/kasmina/layers-checkpoint.ts";
import { decodeEntry } from "../../src/protocol/entry.ts";
import { batchCommand, blueprintUpdateCommand, lifecycleCommand } from "../../src/protocol/make.ts";
import type { CheckpointEvent } from "../../src/protocol/messages.ts";
import { streams } from "../../src/protocol/streams.ts";
import { followLayers, type FollowOptions, type LayerFollowers } from "../../src/runtime/layer-follower.ts";
import { startSystem, type RunningSystem } from "../../src/runtime/system.ts";
import { layerSpecOf } from "../../src/runtime/trainer-hooks.ts";
import { REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const LAYERS = ["ckpt_a", "ckpt_b"];
const SEEDS = 4;

beforeAll(async () => {
  await initBackend();
});

let scope: Scope.Closeable | undefined;
let system: RunningSystem | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await system?.close();
  system = undefined;
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void));
  scope = undefined;
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const until = async (what: string, done: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 500; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting until ${what}`);
};

const columns = (layer: KasminaLayer) => ({ state: Array.from(layer.table.state), blueprint: Array.from(layer.table.blueprint), alpha: Array.from(layer.table.alpha) });

const setUp = async () => {
  scope = await Effect.runPromise(Scope.make());
  const bus: RedisBus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
  const namespace = uniqueNamespace("ckptx").slice(0, 32).toLowerCase().replace(/[^a-z0-9_-]/g, "-");
  system = await startSystem({ layers: LAYERS.map((id) => ({ id, seeds: SEEDS })), bus, namespace, inspect: "" });
  const s = system;
  /** A trainer replica: a KasminaLayer per layer (same shapes and weights everywhere), following the owner. */
  const replica = async (options: FollowOptions = {}) => {
    const layers = LAYERS.map((layerId) => {
      const layer = new KasminaLayer({ units: 8, numSeeds: SEEDS, activation: "relu", layerId, seed: 4 });
      layer.build([null, 5]);
      return layer;
    });
    const followers = await Effect.runPromise(Scope.provide(scope!)(followLayers(bus, layers.map((l) => layerSpecOf(l)), { namespace, blockMs: 50, ...options })));
    return { layers, followers };
  };
  const dir = async () => {
    const d = await mkdtemp(join(tmpdir(), "esper-ckpt-"));
    dirs.push(d);
    return d;
  };
  const caughtUp = async (f: LayerFollowers) => {
    for (const layerId of LAYERS) {
      const last = await Effect.runPromise(bus.lastId(streams(namespace).events(layerId)));
      await until(`the follower of ${layerId} read everything`, () => f.layers.find((l) => l.layerId === layerId)!.offset() === last);
    }
  };
  const germinate = async (layerId: string, seed: number) =>
    expect(
      (await s.send(batchCommand({ commands: [blueprintUpdateCommand({ layer_id: layerId, seed_id: seed, blueprint_id: "residual_mlp", grafting_strategy: "linear" }), lifecycleCommand({ layer_id: layerId, seed_id: seed, target_state: "GERMINATED" })] })))
        .code,
    ).toBe("ok");
  const checkpointEvents = async (layerId: string): Promise<CheckpointEvent[]> => {
    const stream = streams(namespace).events(layerId);
    const entries = await Effect.runPromise(bus.readAfter(stream, "0-0", 10_000, 0));
    return entries.flatMap((e) => {
      const d = decodeEntry(stream, e.fields);
      return d._tag === "Success" && d.success.message_type === "CheckpointEvent" ? [d.success] : [];
    });
  };
  return { bus, namespace, system: s, replica, dir, caughtUp, germinate, checkpointEvents };
};

describe("a checkpoint across layers", () => {
  test("the barrier holds the first replica until the second arrives; both save the same tables at the same offsets; restoring follows on from there", async () => {
    const { bus, namespace, system, replica, dir, caughtUp, germinate, checkpointEvents } = await setUp();
    const [one, two] = [await replica(), await replica()];
    await germinate("ckpt_a", 0);
    await germinate("ckpt_b", 2);
    const [dirOne, dirTwo] = [await dir(), await dir()];
    const options = { checkpointId: "step-1200", parties: 2, namespace, timeoutMs: 10_000 };

    let firstDone = false;
    const first = checkpointLayers(bus, one.followers, one.layers, { ...options, dir: dirOne, participant: "replica-1" }).then((c) => ((firstDone = true), c));
    // While the first waits at the barrier, the layers move on: the cut takes that in, for both.
    await new Promise((r) => setTimeout(r, 300));
    expect(firstDone).toBe(false);
    await germinate("ckpt_a", 1);
    expect((await system.transition("ckpt_b", 2, "TRAINING")).code).toBe("ok");
    await new Promise((r) => setTimeout(r, 100));
    expect(firstDone).toBe(false);
    const second = await checkpointLayers(bus, two.followers, two.layers, { ...options, dir: dirTwo, participant: "replica-2" });
    const firstCheckpoint = await first;

    expect(firstCheckpoint.from).toEqual(second.from);
    // Both saved what the layers said up to the cut, including what was sent while the first waited.
    const restored = await Promise.all(
      [dirOne, dirTwo].map(async (d) => {
        const fresh = await replica({});
        const layers = fresh.layers;
        await restoreLayers(bus, layers, { dir: d, checkpointId: "step-1200", namespace, publish: false });
        return layers.map(columns);
      }),
    );
    expect(restored[0]).toEqual(restored[1]);
    expect(restored[0]![0]!.state.slice(0, 2)).toEqual([1, 1]); // ckpt_a seeds 0 and 1 GERMINATED
    expect(restored[0]![1]!.state[2]).toBe(2); // ckpt_b seed 2 TRAINING

    // One CheckpointEvent `created` per seed saved, per replica, all of one checkpoint id, their sizes summing to the file's.
    const created = (await checkpointEvents("ckpt_a")).filter((e) => e.operation === "created");
    expect(created).toHaveLength(2 * SEEDS);
    expect(new Set(created.map((e) => e.checkpoint_id))).toEqual(new Set(["step-1200"]));
    expect(created.filter((e) => e.source === "esper.trainer").map((e) => e.seed_id).sort()).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    // The two replicas' events may interleave on the stream: together they sum to both files.
    expect(created.reduce((sum, e) => sum + e.checkpoint_size_bytes, 0)).toBe(firstCheckpoint.layers[0]!.sizeBytes + second.layers[0]!.sizeBytes);

    // A replica restored from the checkpoint follows on from its offsets (no rebuild from the store) and keeps up.
    const later = LAYERS.map((layerId) => {
      const layer = new KasminaLayer({ units: 8, numSeeds: SEEDS, activation: "relu", layerId, seed: 4 });
      layer.build([null, 5]);
      return layer;
    });
    const back = await restoreLayers(bus, later, { dir: dirOne, checkpointId: "step-1200", namespace });
    expect(back.from).toEqual(firstCheckpoint.from);
    expect((await checkpointEvents("ckpt_b")).filter((e) => e.operation === "recovered")).toHaveLength(SEEDS);
    expect((await system.transition("ckpt_a", 0, "TRAINING")).code).toBe("ok");
    const resumed = await Effect.runPromise(Scope.provide(scope!)(followLayers(bus, later.map((l) => layerSpecOf(l)), { namespace, blockMs: 50, from: back.from })));
    await caughtUp(resumed);
    await caughtUp(one.followers);
    expect(resumed.layers.map((f) => f.rebuilds())).toEqual([0, 0]);
    expect(later.map(columns)).toEqual(one.layers.map(columns));
    expect(later[0]!.table.row(0).state).toBe("TRAINING");
  }, 60_000);

  test("a participant alone times out at the barrier with a typed error, saves nothing, and its followers go on", async () => {
    const { bus, namespace, system, replica, dir, caughtUp, germinate } = await setUp();
    const one = await replica();
    await germinate("ckpt_a", 0);
    const d = await dir();
    const error = await checkpointLayers(bus, one.followers, one.layers, { dir: d, checkpointId: "step-7", participant: "replica-1", parties: 2, namespace, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ reason: "barrier_timeout", message: "checkpoint step-7: 1 of 2 participants reached its barrier within 300 ms; nothing was saved" });
    await expect(restoreLayers(bus, one.layers, { dir: d, checkpointId: "step-7", namespace })).rejects.toMatchObject({ reason: "io" });
    expect((await system.transition("ckpt_a", 0, "TRAINING")).code).toBe("ok");
    await caughtUp(one.followers);
    expect(one.layers[0]!.table.row(0).state).toBe("TRAINING");
  }, 30_000);
  test("a held follower applies nothing past its hold, and catches up once released", async () => {
    const { system, replica, caughtUp, germinate } = await setUp();
    const one = await replica();
    await germinate("ckpt_a", 0);
    await caughtUp(one.followers);
    const follower = one.followers.layers[0]!;
    const at = follower.offset();
    follower.holdAt(at);
    expect((await system.transition("ckpt_a", 0, "TRAINING")).code).toBe("ok");
    await new Promise((r) => setTimeout(r, 200));
    expect(follower.offset()).toBe(at);
    expect(one.layers[0]!.table.row(0).state).toBe("GERMINATED");
    follower.holdAt(undefined);
    await caughtUp(one.followers);
    expect(one.layers[0]!.table.row(0).state).toBe("TRAINING");
  }, 30_000);
});
