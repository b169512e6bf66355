/**
 * A trainer that follows layers owned elsewhere: its state table is built from the layer's store
 * and kept by the layer's event stream (transitions and blueprints), so two followers hold the
 * owner's table at the same offset; a late one rebuilds from the store; one whose stream was
 * trimmed past its offset rebuilds; its ticks and metrics reach the owner on the telemetry stream.
 * On a real Redis, the owner being a system on the same Redis (as an `esper worker` would be).
 */
import { Effect, Exit, Scope } from "effect";
import { afterEach, describe, expect, test } from "vitest";
import { makeRedisBus, type RedisBus } from "../../src/bus/redis-bus.ts";
import { StateTable } from "../../src/kasmina/state-table.ts";
import { batchCommand, blueprintUpdateCommand, lifecycleCommand } from "../../src/protocol/make.ts";
import { streams } from "../../src/protocol/streams.ts";
import { followLayers, startFollowing, type LayerFollowers } from "../../src/runtime/layer-follower.ts";
import { startSystem, type RunningSystem } from "../../src/runtime/system.ts";
import { trainerHooks } from "../../src/runtime/trainer-hooks.ts";
import { REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const L = "followed";
const SEEDS = 8;
const KINDS = ["residual_mlp", "lateral_wide"];
const blueprintIndex = (id: string | null) => (id === null ? -1 : KINDS.indexOf(id));

let scope: Scope.Closeable | undefined;
let system: RunningSystem | undefined;
afterEach(async () => {
  await system?.close();
  system = undefined;
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void));
  scope = undefined;
});

const columns = (t: StateTable) => ({ state: Array.from(t.state), blueprint: Array.from(t.blueprint), strategy: Array.from(t.strategy), alpha: Array.from(t.alpha) });

const setUp = async () => {
  scope = await Effect.runPromise(Scope.make());
  const bus: RedisBus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
  const namespace = uniqueNamespace("follow").slice(0, 32).toLowerCase().replace(/[^a-z0-9_-]/g, "-");
  const owner = new StateTable(SEEDS);
  system = await startSystem({ layers: [{ id: L, seeds: SEEDS, table: owner, blueprintIndex, guards: { minEpochs: { TRAINING: 2 } } }], bus, namespace, inspect: "" });
  const follow = (table: StateTable, onRebuild?: (why: string) => void, readCount?: number) =>
    Effect.runPromise(
      Scope.provide(scope!)(
        followLayers(bus, [{ id: L, seeds: SEEDS, table, blueprintIndex }], { namespace, blockMs: 50, ...(readCount ? { readCount } : {}), ...(onRebuild ? { onRebuild: (_l, why) => onRebuild(why) } : {}) }),
      ),
    );
  /** Until the follower applied everything on the event stream. */
  const caughtUp = async (f: LayerFollowers) => {
    const last = await Effect.runPromise(bus.lastId(streams(namespace).events(L)));
    for (let i = 0; i < 400 && f.layers[0]!.offset() !== last; i++) await new Promise((r) => setTimeout(r, 10));
    expect(f.layers[0]!.offset()).toBe(last);
  };
  return { bus, namespace, owner, follow, caughtUp, system: system! };
};

/** Germinates seeds 0..3 with blueprints (as Tamiyo does: a blueprint, then GERMINATED, in one batch), moves some on, culls one. */
const grow = async (s: RunningSystem) => {
  for (const seed of [0, 1, 2, 3]) {
    const result = await s.send(
      batchCommand({
        commands: [
          blueprintUpdateCommand({ layer_id: L, seed_id: seed, blueprint_id: KINDS[seed % 2]!, grafting_strategy: seed === 1 ? "momentum" : "linear" }),
          lifecycleCommand({ layer_id: L, seed_id: seed, target_state: "GERMINATED" }),
        ],
      }),
    );
    expect(result.code).toBe("ok");
  }
  expect((await s.transition(L, 1, "TRAINING")).code).toBe("ok");
  expect((await s.transition(L, 2, "CANCELLED")).code).toBe("ok");
};

describe("a trainer following a layer owned elsewhere", () => {
  test("two followers hold the owner's table at the same offset; a late one rebuilds it from the store", async () => {
    const { owner, follow, caughtUp, system } = await setUp();
    const [a, b] = [new StateTable(SEEDS), new StateTable(SEEDS)];
    const fa = await follow(a);
    const fb = await follow(b);
    await grow(system);
    await caughtUp(fa);
    await caughtUp(fb);
    expect(columns(a)).toEqual(columns(owner));
    expect(columns(b)).toEqual(columns(owner));
    expect(fa.layers[0]!.offset()).toBe(fb.layers[0]!.offset());
    expect(Array.from(owner.state).slice(0, 4)).toEqual([1, 2, 9, 1]); // GERMINATED, TRAINING, CANCELLED, GERMINATED
    expect(Array.from(owner.blueprint).slice(0, 4)).toEqual([0, 1, 0, 1]);
    expect(fa.layers[0]!.applied()).toBeGreaterThan(0);

    const late = new StateTable(SEEDS);
    const fl = await follow(late);
    expect(fl.layers[0]!.rebuilds()).toBe(1);
    expect(columns(late)).toEqual(columns(owner));
  }, 30_000);

  test("a stream trimmed past the follower's offset makes it rebuild from the store, and it is right again", async () => {
    const { bus, namespace, owner, follow, caughtUp, system } = await setUp();
    const table = new StateTable(SEEDS);
    const whys: string[] = [];
    const f = await follow(table, (why) => whys.push(why), 1); // one entry a read: it falls behind a burst
    await grow(system);
    await caughtUp(f);
    // A burst it cannot keep up with, trimmed away under it (what MAXLEN does to a follower that lags), with a transition in it.
    const events = streams(namespace).events(L);
    await Effect.runPromise(bus.publishMany(Array.from({ length: 20_000 }, (_, i) => ({ stream: events, fields: { type: "Noise", data: new Uint8Array([i % 256]) } }))));
    expect((await system.transition(L, 3, "CANCELLED")).code).toBe("ok");
    await Effect.runPromise(bus.trim(events, 0));
    expect((await system.transition(L, 0, "TRAINING")).code).toBe("ok");
    // It notices after the read that brought it to the end of what is left, then rebuilds.
    for (let i = 0; i < 1_000 && whys.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await caughtUp(f);
    expect(whys).toEqual(["started", expect.stringMatching(/^the event stream was trimmed past \d+-\d+$/)]);
    expect(columns(table)).toEqual(columns(owner));
    expect(table.row(0).state).toBe("TRAINING");
    expect(table.row(3).state).toBe("CANCELLED"); // trimmed before it was read: known from the store
  }, 30_000);

  test("its ticks and metrics reach the owner through the telemetry stream, epochs counted from the layer's own", async () => {
    const { bus, namespace, follow, system } = await setUp();
    await grow(system);
    const f = await follow(new StateTable(SEEDS));
    const hooks = trainerHooks(f);
    hooks.onEpoch?.(L, 1);
    hooks.onEpoch?.(L, 1);
    await hooks.settled();
    // The owner counted two epochs, so seed 1 has dwelt its 2 epochs in TRAINING.
    for (let i = 0; i < 200 && system.layer(L).record.epoch < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(system.layer(L).record.epoch).toBe(2);
    // A second replica reporting the same epoch does not tick it again.
    await using g = await startFollowing(bus, [{ id: L, seeds: SEEDS, table: new StateTable(SEEDS), blueprintIndex }], { namespace }); // the Promise form
    await g.tick(L, 0);
    await f.reportMetrics(L, { 1: { reconstruction_loss: 0.001 } });
    for (let i = 0; i < 200 && system.layer(L).seed(1).context.metrics.reconstruction_loss === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    expect(system.layer(L).record.epoch).toBe(2);
    expect((await system.transition(L, 1, "GRAFTING")).code).toBe("ok");
  }, 30_000);
});
