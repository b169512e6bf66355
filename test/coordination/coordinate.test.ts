/**
 * Coordination requests (lock, election, barrier) decided by Redis on the requester's behalf,
 * on the embedded bus and on a real Redis: each request and its response on P.coordination.
 */
import { Effect, Exit, Scope } from "effect";
import { afterEach, describe, expect, test } from "vitest";
import type { Bus } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { coordinate } from "../../src/coordination/coordinate.ts";
import { decodeEntry } from "../../src/protocol/entry.ts";
import { coordinationRequest } from "../../src/protocol/make.ts";
import { streams } from "../../src/protocol/streams.ts";
import { REDIS_URL, uniqueNamespace } from "../support/redis.ts";

let scope: Scope.Closeable | undefined;
afterEach(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void));
  scope = undefined;
});

const buses: Record<string, () => Promise<Bus>> = {
  MemoryBus: async () => new MemoryBus(),
  RedisBus: async () => {
    scope = await Effect.runPromise(Scope.make());
    return Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
  },
};

describe.each(Object.keys(buses))("coordination on %s", (name) => {
  const setUp = async () => {
    const bus = await buses[name]!();
    const namespace = uniqueNamespace("coord").slice(0, 32).toLowerCase().replace(/[^a-z0-9_-]/g, "-");
    const ask = (operation: "lock" | "election" | "barrier", resource: string, requester: string, timeout = 0, parameters: Record<string, unknown> = {}) =>
      Effect.runPromise(coordinate(bus, coordinationRequest({ operation, resource_id: resource, requester_id: requester, timeout_ms: timeout, parameters, source: requester }), { namespace, pollMs: 10 }));
    return { bus, namespace, ask };
  };

  test("a lock: one holder, others refused (naming it) or waiting until it is released; each holding a new token", async () => {
    const { ask } = await setUp();
    expect(await ask("lock", "ckpt", "a")).toMatchObject({ granted: true, holder_id: "a", details: { token: 1 } });
    const refused = await ask("lock", "ckpt", "b", 60);
    expect(refused).toMatchObject({ granted: false, holder_id: "a" });
    expect(refused.wait_time_ms).toBeGreaterThanOrEqual(40);
    const waiting = ask("lock", "ckpt", "b", 5_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(await ask("lock", "ckpt", "a", 0, { release: true })).toMatchObject({ granted: true, details: { released: true } });
    expect(await waiting).toMatchObject({ granted: true, holder_id: "b", details: { token: 2 } });
  });

  test("an election: the first requester leads and renews by asking again; a lock of the same name is another resource", async () => {
    const { ask } = await setUp();
    expect(await ask("election", "tamiyo", "x")).toMatchObject({ granted: true, holder_id: "x", details: { token: 1 } });
    expect(await ask("election", "tamiyo", "y")).toMatchObject({ granted: false, holder_id: "x" });
    expect(await ask("election", "tamiyo", "x")).toMatchObject({ granted: true, details: { token: 1 } });
    expect(await ask("lock", "tamiyo", "y")).toMatchObject({ granted: true, holder_id: "y" });
  });

  test("a barrier: granted to every party once all arrived; one that waits alone times out; parties is required", async () => {
    const { bus, namespace, ask } = await setUp();
    const all = await Promise.all(["l1", "l2", "l3"].map((r, i) => new Promise((res) => setTimeout(res, i * 30)).then(() => ask("barrier", "epoch-12", r, 5_000, { parties: 3 }))));
    expect(all.map((r) => [r.granted, r.details.arrived])).toEqual([
      [true, 3],
      [true, 3],
      [true, 3],
    ]);
    expect(await ask("barrier", "epoch-13", "l1", 80, { parties: 2 })).toMatchObject({ granted: false, details: { arrived: 1, parties: 2 } });
    expect(await ask("barrier", "epoch-14", "l1", 0)).toMatchObject({ granted: false, details: { error: expect.stringMatching(/parameters\.parties/) } });
    // Each request and its response are on P.coordination, for anyone to see.
    const entries = await Effect.runPromise(bus.range(streams(namespace).coordination, "-", "+", 100));
    const messages = entries.map((e) => decodeEntry(streams(namespace).coordination, e.fields)).filter((d) => d._tag === "Success").map((d) => d.success);
    expect(messages.filter((m) => m.message_type === "CoordinationRequest")).toHaveLength(5);
    const responses = messages.filter((m) => m.message_type === "CoordinationResponse");
    expect(responses).toHaveLength(5);
    const requests = new Set(messages.filter((m) => m.message_type === "CoordinationRequest").map((m) => m.message_id));
    expect(responses.every((r) => r.message_type === "CoordinationResponse" && requests.has(r.request_id))).toBe(true);
  });
});
