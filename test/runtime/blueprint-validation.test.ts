/**
 * A BlueprintUpdateCommand over the wire reaches a trainer's data plane: the layer's owner (runLayerOwner, as an
 * `esper worker` runs it) writes the command's validation_metrics and rollback_on_failure in its BlueprintEvent
 * `updated`; the one replica that validates (a follower with a real KasminaLayer and `blueprintValidator`) swaps,
 * validates, says `validated` or `rolled_back` on the event stream, and after a rollback has the owner put the
 * previous blueprint back, so the owner's store, every replica's table and the data plane agree again.
 * On a real Redis.
 */
import { Effect, Exit, Scope } from "effect";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { layerKeys, storedSeeds } from "../../src/bridge/store.ts";
import { runLayerOwner } from "../../src/bridge/owner.ts";
import { makeRedisBus, type RedisBus } from "../../src/bus/redis-bus.ts";
import { makeClient } from "../../src/client/client.ts";
import { blueprintAt, blueprintIndex } from "../../src/kasmina/blueprints.ts";
import { blueprintValidator } from "../../src/kasmina/blueprint-validator.ts";
import { initBackend, KasminaLayer } from "../../src/kasmina/index.ts";
import { StateTable } from "../../src/kasmina/state-table.ts";
import { decodeEntry } from "../../src/protocol/entry.ts";
import { batchCommand, blueprintUpdateCommand, lifecycleCommand } from "../../src/protocol/make.ts";
import type { BlueprintEvent } from "../../src/protocol/messages.ts";
import { streams } from "../../src/protocol/streams.ts";
import { followLayers, type LayerFollowers } from "../../src/runtime/layer-follower.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import { layerSpecOf } from "../../src/runtime/trainer-hooks.ts";
import { REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const L = "validated";
const SEEDS = 3;
/** What the trainer's validation pass measures with each blueprint in seed 1 (the test's stand-in for a held-out pass). */
const ACCURACY: Readonly<Record<string, number>> = { residual_mlp: 0.85, residual_wide_tanh: 0.95, residual_bottleneck: 0.5 };

beforeAll(async () => {
  await initBackend();
});

let scope: Scope.Closeable | undefined;
afterEach(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void));
  scope = undefined;
});

const until = async (what: string, done: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 500; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting until ${what}`);
};

const setUp = async () => {
  scope = await Effect.runPromise(Scope.make());
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(scope!)(effect));
  const bus: RedisBus = await inScope(makeRedisBus({ url: REDIS_URL }));
  const namespace = uniqueNamespace("bpval").slice(0, 32).toLowerCase().replace(/[^a-z0-9_-]/g, "-");
  const names = streams(namespace);
  let owning = false;
  await inScope(runLayerOwner(bus, L, () => new LayerHost({ layerId: L, numSeeds: SEEDS, source: "esper.worker.test" }), { namespace, consumer: "owner-1", onRole: (c) => void (owning = c.role === "owner") }));
  await until("the owner holds the layer", () => owning);
  const client = await inScope(makeClient(bus, { namespace }));

  // The replica that validates: a real KasminaLayer whose validation pass is ACCURACY of seed 1's blueprint.
  const layer = new KasminaLayer({ units: 12, numSeeds: SEEDS, activation: "relu", layerId: L, seed: 4 });
  layer.build([null, 5]);
  const validate = (l: KasminaLayer, seedId: number) => ({ accuracy: ACCURACY[blueprintAt(l.table.blueprint[seedId]!)?.id ?? ""] ?? 0 });
  const validating = await inScope(followLayers(bus, [layerSpecOf(layer)], { namespace, blockMs: 50, validateBlueprint: blueprintValidator([layer], validate) }));
  // Another replica, which only follows.
  const other = new StateTable(SEEDS);
  const following = await inScope(followLayers(bus, [{ id: L, seeds: SEEDS, table: other, blueprintIndex: (id) => (id === null ? -1 : blueprintIndex(id)) }], { namespace, blockMs: 50 }));

  const blueprintEvents = async (): Promise<BlueprintEvent[]> => {
    const entries = await Effect.runPromise(bus.readAfter(names.events(L), "0-0", 10_000, 0));
    return entries.flatMap((e) => {
      const d = decodeEntry(names.events(L), e.fields);
      return d._tag === "Success" && d.success.message_type === "BlueprintEvent" ? [d.success] : [];
    });
  };
  const verdictOn = async (commandId: string): Promise<BlueprintEvent> => {
    let found: BlueprintEvent | undefined;
    await until(`a verdict on ${commandId}`, async () => (found = (await blueprintEvents()).find((e) => e.operation !== "updated" && e.details.command_id === commandId)) !== undefined);
    return found!;
  };
  const caughtUp = async (...fs: LayerFollowers[]) => {
    const last = await Effect.runPromise(bus.lastId(names.events(L)));
    await until("the followers read everything", () => fs.every((f) => f.layers[0]!.offset() === last));
  };
  const storedBlueprint = async (seedId: number) => (await Effect.runPromise(storedSeeds(bus, layerKeys(names, L)))).get(seedId)?.context.blueprintId ?? null;
  const update = (seedId: number, blueprintId: string, extra: { validation_metrics?: Record<string, number>; rollback_on_failure?: boolean } = {}) =>
    blueprintUpdateCommand({ layer_id: L, seed_id: seedId, blueprint_id: blueprintId, grafting_strategy: "linear", ...extra });

  // Seed 1 gets residual_mlp (no validation asked) and germinates, as Tamiyo does it.
  const first = await client.send(batchCommand({ commands: [update(1, "residual_mlp"), lifecycleCommand({ layer_id: L, seed_id: 1, target_state: "GERMINATED" })] }));
  expect(first.code).toBe("ok");
  await caughtUp(validating, following);
  expect(layer.table.row(1)).toMatchObject({ state: "GERMINATED", blueprint: blueprintIndex("residual_mlp") });
  return { client, layer, other, validating, following, verdictOn, caughtUp, storedBlueprint, blueprintEvents, update };
};

describe("a BlueprintUpdateCommand validated by the trainer's data plane", () => {
  test("thresholds met: validated, success true; the new blueprint stays everywhere", async () => {
    const { client, layer, other, validating, following, verdictOn, caughtUp, storedBlueprint, update } = await setUp();
    const command = update(1, "residual_wide_tanh", { validation_metrics: { accuracy: 0.9 } });
    expect((await client.send(command)).code).toBe("ok");
    const verdict = await verdictOn(command.message_id);
    expect(verdict).toMatchObject({ operation: "validated", success: true, blueprint_id: "residual_wide_tanh", previous_blueprint_id: "residual_mlp", metrics_delta: { accuracy: expect.closeTo(0.1, 6) } });
    await caughtUp(validating, following);
    expect(validating.layers[0]!.validations()).toBe(1);
    expect(layer.table.row(1).blueprint).toBe(blueprintIndex("residual_wide_tanh"));
    expect(other.row(1).blueprint).toBe(blueprintIndex("residual_wide_tanh"));
    expect(await storedBlueprint(1)).toBe("residual_wide_tanh");
  }, 30_000);

  test("thresholds missed, rollback_on_failure: rolled_back, and the owner puts the previous blueprint back (store, every table, weights)", async () => {
    const { client, layer, other, validating, following, verdictOn, caughtUp, storedBlueprint, blueprintEvents, update } = await setUp();
    const weights = layer.readSeedParams([1]);
    const row = layer.table.row(1);
    const command = update(1, "residual_bottleneck", { validation_metrics: { accuracy: 0.8 } });
    expect((await client.send(command)).code).toBe("ok");
    const verdict = await verdictOn(command.message_id);
    expect(verdict).toMatchObject({ operation: "rolled_back", success: true, blueprint_id: "residual_bottleneck", previous_blueprint_id: "residual_mlp" });
    expect(verdict.details).toMatchObject({ unmet: ["accuracy >= 0.8 (got 0.5)"], restored_blueprint_id: "residual_mlp" });
    // The owner takes the rollback as a command of its own, and says so with an `updated` naming what it rolls back.
    await until("the owner stored the previous blueprint again", async () => (await storedBlueprint(1)) === "residual_mlp");
    const back = (await blueprintEvents()).find((e) => e.operation === "updated" && e.details.rolls_back === command.message_id);
    expect(back).toMatchObject({ blueprint_id: "residual_mlp", previous_blueprint_id: "residual_bottleneck" });
    await caughtUp(validating, following);
    expect(layer.table.row(1)).toEqual(row);
    expect(layer.readSeedParams([1])).toEqual(weights);
    expect(other.row(1).blueprint).toBe(blueprintIndex("residual_mlp"));
    expect(validating.layers[0]!.validations()).toBe(1); // the rollback itself is not validated again
  }, 30_000);

  test("thresholds missed without rollback_on_failure: validated, success false, and the new blueprint stays", async () => {
    const { client, layer, other, validating, following, verdictOn, caughtUp, storedBlueprint, update } = await setUp();
    const command = update(1, "residual_bottleneck", { validation_metrics: { accuracy: 0.8 }, rollback_on_failure: false });
    expect((await client.send(command)).code).toBe("ok");
    const verdict = await verdictOn(command.message_id);
    expect(verdict).toMatchObject({ operation: "validated", success: false, blueprint_id: "residual_bottleneck" });
    expect(verdict.details).toMatchObject({ unmet: ["accuracy >= 0.8 (got 0.5)"] });
    await caughtUp(validating, following);
    expect(layer.table.row(1).blueprint).toBe(blueprintIndex("residual_bottleneck"));
    expect(other.row(1).blueprint).toBe(blueprintIndex("residual_bottleneck"));
    expect(await storedBlueprint(1)).toBe("residual_bottleneck");
  }, 30_000);

  test("a seed that had no blueprint has nothing to roll back to: validated, success false, no_previous_blueprint", async () => {
    const { client, layer, verdictOn, storedBlueprint, update } = await setUp();
    const command = update(2, "residual_bottleneck", { validation_metrics: { accuracy: 0.8 } });
    expect((await client.send(command)).code).toBe("ok");
    const verdict = await verdictOn(command.message_id);
    expect(verdict).toMatchObject({ operation: "validated", success: false, previous_blueprint_id: null, details: { no_previous_blueprint: true } });
    expect(layer.table.row(2).blueprint).toBe(blueprintIndex("residual_bottleneck"));
    expect(await storedBlueprint(2)).toBe("residual_bottleneck");
  }, 30_000);
});
