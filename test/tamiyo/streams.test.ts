/**
 * Telemetry end to end, the same on both buses: a window handed to the telemetry publisher (as a
 * Kasmina layer's trainer does) travels P.telemetry.layer.{L} to Tamiyo's reader, and Tamiyo
 * acts on it; its command and the layer's answer travel the layer's control and event streams.
 * On the embedded bus, and unchanged on a real Redis.
 */
import { Effect, Exit, Scope } from "effect";
import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { Bus } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { makeSystem } from "../../src/runtime/system.ts";
import { makeTamiyo } from "../../src/tamiyo/tamiyo.ts";
import { telemetryAlerts } from "../../src/telemetry/alerts.ts";
import { makeTelemetryPublisher } from "../../src/telemetry/publisher.ts";
import { streams } from "../../src/protocol/streams.ts";
import { connectOrFail, deleteNamespace, REDIS_URL } from "../support/redis.ts";

const GUARDS = { minEpochs: { TRAINING: 2 } };
const PROFILE = { layerId: "hidden", numSeeds: 4, hostParams: 10_000, blueprints: [{ id: "lateral_wide", params: 610 }], guards: GUARDS };

const scenario = async (makeBus: Effect.Effect<Bus, unknown, Scope.Scope>, namespace: string) => {
  const scope = Scope.makeUnsafe();
  const open = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(effect, scope));
  try {
    const bus = await open(makeBus);
    const system = await open(makeSystem({ layers: [{ id: "hidden", seeds: 4, guards: GUARDS }], bus, namespace, inspect: "" }));
    const publisher = await open(makeTelemetryPublisher(bus, { namespace, batchWindowMs: 0 }));
    const tamiyo = await open(makeTamiyo({ bus, link: system, layers: [PROFILE], namespace, config: { strategy: "aggressive", maxActiveSeeds: 1 }, alerts: telemetryAlerts() }));
    // A window as a trainer's telemetry tensor gives it: seed 2's units are dead.
    const columns = ["sparsity", "gradient_norm", "activation_norm"];
    const rows = Float32Array.from([0.3, 1, 2, 0.4, 1, 2, 1, 0, 0, 0.5, 1, 2]);
    publisher.sink("hidden", 10, rows, columns as never);
    await Effect.runPromise(publisher.flush);
    const [germinate] = await tamiyo.round();
    expect(germinate).toMatchObject({ kind: "germinate", seedId: 2, numbers: { sparsity: 1 }, outcome: { success: true, code: "ok" } });
    await system.tick("hidden", 1);
    const [train] = await tamiyo.round();
    expect(train).toMatchObject({ action: "GERMINATED -> TRAINING", outcome: { success: true } });
    expect(system.layer("hidden").seeds()[2]!.state).toBe("TRAINING");
    // Everything Tamiyo read was acked in its group; nothing was dead-lettered.
    const info = await Effect.runPromise(bus.groupInfo(streams(namespace).telemetry("hidden"), "tamiyo"));
    expect(info?.pending).toBe(0);
    expect(tamiyo.stats()).toMatchObject({ catchUpMissed: 0, policyErrors: 0, refused: 0 });
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
  }
};

let admin: Redis | undefined;
const namespaces: string[] = [];
afterAll(async () => {
  if (admin) {
    for (const ns of namespaces) await deleteNamespace(admin, `${ns}.`);
    await admin.quit();
  }
});

describe("a trainer's telemetry moves Tamiyo", () => {
  it("in process, on the embedded bus", async () => {
    await scenario(Effect.succeed(new MemoryBus()), "tamiyo-mem");
  });

  it("over Redis, unchanged", async () => {
    admin = await connectOrFail();
    const namespace = `tam${process.pid}${Date.now().toString(36)}`.slice(0, 32);
    namespaces.push(namespace);
    await scenario(makeRedisBus({ url: REDIS_URL }), namespace);
  });
});
