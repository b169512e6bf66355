import { Effect } from "effect";
import type { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { BusService } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { RedisBus } from "../../src/bus/redis-bus.ts";
import { connectOrFail, deleteNamespace, REDIS_URL, uniqueNamespace } from "../support/redis.ts";

let admin: Redis | undefined;
afterAll(async () => {
  await admin?.quit();
});

/** Connections Redis sees under a CLIENT SETNAME prefix. */
const connectionsNamed = async (redis: Redis, prefix: string): Promise<string[]> =>
  ((await redis.client("LIST")) as string)
    .split("\n")
    .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? "")
    .filter((name) => name.startsWith(`${prefix}:`));

/** The same program runs on either bus: it names BusService and a Layer provides it. */
const program = (stream: string, during: () => Promise<void> = async () => {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const bus = yield* BusService;
      yield* bus.ensureGroup(stream, "g", "0");
      const reader = yield* bus.reader({ stream, group: "g", consumer: "c", blockMs: 0 });
      yield* bus.publish(stream, { data: new Uint8Array([1]), type: "Heartbeat" });
      const got = yield* reader.read;
      yield* Effect.promise(during);
      return got.map((e) => e.fields.type);
    }),
  );

it("MemoryBus.layer provides the bus as BusService", async () => {
  expect(await Effect.runPromise(Effect.provide(program("t.coordination"), MemoryBus.layer()))).toEqual(["Heartbeat"]);
});

it("RedisBus.layer provides BusService, gives each reader its own connection, and closes them all with the layer", async () => {
  admin ??= await connectOrFail();
  const redis = admin;
  const namespace = uniqueNamespace("layer");
  const name = namespace;
  let open: string[] = [];
  const got = await Effect.runPromise(
    Effect.provide(
      program(`${namespace}.coordination`, async () => {
        open = await connectionsNamed(redis, name);
      }),
      RedisBus.layer({ url: REDIS_URL, connectionName: name }),
    ),
  );
  expect(got).toEqual(["Heartbeat"]);
  expect(open.sort()).toEqual([`${name}:main`, `${name}:reader:c`]);
  expect(await connectionsNamed(redis, name)).toEqual([]);
  await deleteNamespace(redis, namespace);
});
