import { Effect, Exit, Scope } from "effect";
import type { Redis } from "ioredis";
import { afterAll } from "vitest";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { connectOrFail, deleteNamespace, REDIS_URL, uniqueNamespace } from "../support/redis.ts";
import { busConformance } from "./bus-conformance.ts";

let admin: Redis | undefined;
afterAll(async () => {
  await admin?.quit();
});

busConformance("RedisBus", async () => {
  // In every test's setup, so that without Redis each test fails with how to start it.
  admin ??= await connectOrFail();
  const cleaner = admin;
  const namespace = uniqueNamespace("conformance");
  const scope = await Effect.runPromise(Scope.make());
  const bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
  return {
    bus,
    provide: (effect) => effect,
    // Redis measures idle time on its own clock, so real time has to pass.
    letIdle: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    idleMs: 250,
    key: (name) => `${namespace}.${name}`,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void));
      await deleteNamespace(cleaner, namespace);
    },
  };
});
