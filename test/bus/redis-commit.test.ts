import { Effect, Exit, Scope } from "effect";
import { afterAll, expect, test } from "vitest";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { connectOrFail, deleteNamespace, REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const namespace = uniqueNamespace("commit");
afterAll(async () => {
  const admin = await connectOrFail();
  await deleteNamespace(admin, namespace);
  await admin.quit();
});

// Commits run the script by its hash (EVALSHA); a Redis that lost its scripts (restart, SCRIPT
// FLUSH) gets it loaded again by the commit that finds it missing, and that commit still lands once.
test("a commit after SCRIPT FLUSH loads the script again and lands exactly once", async () => {
  const admin = await connectOrFail();
  const scope = await Effect.runPromise(Scope.make());
  try {
    const bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
    const events = `${namespace}.event.layer.{a}`;
    await Effect.runPromise(bus.commit([{ op: "xadd", stream: events, fields: { data: new Uint8Array([1]), type: "CommandResult" } }]));
    await admin.script("FLUSH");
    const ids = await Effect.runPromise(bus.commit([{ op: "xadd", stream: events, fields: { data: new Uint8Array([2]), type: "CommandResult" } }]));
    expect(ids).toHaveLength(1);
    expect(await admin.xlen(events)).toBe(2);
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
    await admin.quit();
  }
});

// A value that cannot be encoded fails the same way on every retry: the commit is refused as
// command_failed (not retried as if Redis were away), and nothing is written.
test("a commit whose value cannot be encoded fails as command_failed and writes nothing", async () => {
  const admin = await connectOrFail();
  const scope = await Effect.runPromise(Scope.make());
  try {
    const bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
    const events = `${namespace}.event.layer.{b}`;
    const unencodable = { encode: (): Uint8Array => { throw new RangeError("BigInt too large"); } };
    const exit = await Effect.runPromise(Effect.exit(bus.commit([{ op: "xadd", stream: events, fields: { data: new Uint8Array([1]), type: "T" } }, { op: "hset", key: `${namespace}.state.layer.{b}`, values: { "0": unencodable } }])));
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("command_failed");
    expect(await admin.xlen(events)).toBe(0);
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
    await admin.quit();
  }
});
