/**
 * Regression tests for the doubled commits the chaos test found when Redis stalls longer than
 * the bus's call limit: a bridge commit whose reply was lost (or came too late) was retried
 * blindly and landed twice, appending the batch's transitions and results a second time; and a
 * commit abandoned at its time limit could still land after a later read had found it missing,
 * because its EVALSHA -> NOSCRIPT -> EVAL fallback went on after the caller had given up.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect, Exit, Scope } from "effect";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BusError, type Bus } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { decodeEntry, encodeEntry } from "../../src/protocol/entry.ts";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import { streams } from "../../src/protocol/streams.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import { runLayerBridge } from "../../src/bridge/bridge.ts";
import { startRedisServer, type RedisServer } from "../support/redis-server.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect);

let redis: RedisServer;
let dir: string;
const scopes: Scope.Closeable[] = [];
const inScope = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => {
  const scope = await run(Scope.make());
  scopes.push(scope);
  return run(Scope.provide(scope)(effect));
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "esper-commit-retry-"));
  redis = await startRedisServer({ dir });
});
afterAll(async () => {
  for (const scope of scopes.splice(0).reverse()) await run(Scope.close(scope, Exit.void));
  await redis?.stop("SIGKILL");
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const busKinds = {
  MemoryBus: async (): Promise<Bus> => new MemoryBus(),
  RedisBus: async (): Promise<Bus> => inScope(makeRedisBus({ url: redis.url })),
};

describe.each(Object.keys(busKinds) as (keyof typeof busKinds)[])("on %s, a bridge commit whose reply was lost", (kind) => {
  test("is not applied again by its retry: one transition, one result", async () => {
    const bus = await busKinds[kind]();
    const names = streams(`retry${kind.toLowerCase()}${Date.now().toString(36)}`);
    let replies = 0;
    // The first batch commit (it acks) lands, then its caller hears nothing but a dropped connection.
    const lossy: Bus = {
      ...bus,
      commit: (ops) =>
        Effect.flatMap(bus.commit(ops), (ids) =>
          ops.some((op) => op.op === "ack") && replies++ === 0 ? Effect.fail(new BusError({ reason: "unavailable", message: "connection closed before the reply" })) : Effect.succeed(ids),
        ),
    };
    const host = new LayerHost({ layerId: "a", numSeeds: 1 });
    const bridge = await inScope(runLayerBridge(lossy, host, { namespace: names.namespace, consumer: "w1", blockMs: 20 }));
    const command = lifecycleCommand({ layer_id: "a", seed_id: 0, target_state: "GERMINATED", force: true });
    await run(bus.publish(names.control("a"), encodeEntry(command, { stream: names.control("a") })));
    for (let waited = 0; bridge.stats().commits === 0; waited += 10) {
      if (waited > 5_000) throw new Error("the bridge never committed");
      await sleep(10);
    }
    const events = (await run(bus.range(names.events("a")))).map((e) => decodeEntry(e.stream, e.fields)).flatMap((d) => (d._tag === "Success" ? [d.success] : []));
    expect(replies, "the retry went through commit again").toBeGreaterThanOrEqual(1);
    expect(events.map((m) => `${m.message_type} ${m.correlation_id}`)).toEqual([
      `StateTransitionEvent ${command.message_id}`,
      `CommandResult ${command.message_id}`,
    ]);
    host.stop();
  });
});

describe("on RedisBus, a commit abandoned at its time limit", () => {
  test("is settled before the next call on the bus answers: it never lands after a read found it missing", async () => {
    const bus = await inScope(makeRedisBus({ url: redis.url, callTimeoutMs: 200 }));
    const admin = new Redis(redis.url);
    try {
      // A fresh server holds no scripts: the case where EVALSHA used to fall back to a second command.
      await admin.script("FLUSH");
      const stream = `abandoned.${Date.now().toString(36)}`;
      const marker = `${stream}.marker`;
      await admin.client("PAUSE", 1_000, "WRITE");
      const commit = await run(Effect.exit(bus.commit([{ op: "xadd", stream, fields: { data: new Uint8Array([1]), type: "T" } }, { op: "hset", key: marker, values: { token: "t1" } }])));
      expect(Exit.isFailure(commit), "the commit outlived its 200 ms limit").toBe(true);
      // Reads on the same connection queue behind the stalled commit; the first that answers settles it.
      let seen: readonly (Uint8Array | null)[] | undefined;
      for (let tries = 0; seen === undefined && tries < 50; tries++) {
        const read = await run(Effect.exit(bus.hmget(marker, ["token"])));
        if (Exit.isSuccess(read)) seen = read.value;
      }
      expect(seen, "a read answered once Redis resumed").toBeDefined();
      // One more call on the bus's connection: whatever it sent before has run by the time this answers.
      await run(bus.length(stream));
      // Whatever the attempt came to (EVALSHA on a flushed server runs nothing: NOSCRIPT), the read
      // that answered saw the final word: it landed once and the read saw it, or it never lands.
      const landed = await admin.xlen(stream);
      expect(landed).toBeLessThanOrEqual(1);
      expect({ readSawIt: seen![0] !== null, landed }).toEqual({ readSawIt: landed === 1, landed });
    } finally {
      admin.disconnect();
    }
  });
});
