/**
 * Coordination requests from another program: a CoordinationRequest written on P.coordination as
 * any writer could (the reference's JSON, no `enc`) is answered by an `esper worker` with a
 * CoordinationResponse: a lock is granted to one requester at a time, a barrier once its parties
 * arrived; an entry that does not decode is dead-lettered on P.dlq.all; a request that esper's
 * own `coordinate` decides for itself gets no second answer.
 */
import { randomUUID } from "node:crypto";
import { Effect, Exit, Scope } from "effect";
import { describe, expect, test } from "vitest";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { coordinate } from "../../src/coordination/coordinate.ts";
import { decodeEntry } from "../../src/protocol/entry.ts";
import { coordinationRequest } from "../../src/protocol/make.ts";
import type { CoordinationResponse } from "../../src/protocol/messages.ts";
import { streams } from "../../src/protocol/streams.ts";
import { privateRedis } from "./private-redis.ts";

const redis = privateRedis();
const namespace = "coord";
const names = streams(namespace);

/** A request as a Python program writes it: JSON in `data`, its type in `type`. */
const ask = async (operation: string, requester: string, resource: string, timeoutMs: number, parameters: Record<string, unknown> = {}): Promise<string> => {
  const id = randomUUID();
  const data = { message_type: "CoordinationRequest", message_id: id, timestamp: Date.now() / 1000, source: `py.${requester}`, version: "1.0", correlation_id: null, operation, resource_id: resource, requester_id: requester, timeout_ms: timeoutMs, parameters };
  await redis.admin.xadd(names.coordination, "*", "data", JSON.stringify(data), "type", "CoordinationRequest");
  return id;
};

const responseTo = async (requestId: string, withinMs = 10_000): Promise<CoordinationResponse[]> => {
  for (const deadline = Date.now() + withinMs; Date.now() < deadline; ) {
    const found = await responses(requestId);
    if (found.length > 0) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no CoordinationResponse to ${requestId} within ${withinMs} ms`);
};

const responses = async (requestId: string): Promise<CoordinationResponse[]> => {
  const entries = (await redis.admin.xrangeBuffer(names.coordination, "-", "+")) as [Buffer, Buffer[]][];
  const out: CoordinationResponse[] = [];
  for (const [, raw] of entries) {
    const fields: Record<string, Uint8Array | string> = {};
    for (let i = 0; i < raw.length; i += 2) fields[raw[i]!.toString()] = raw[i]!.toString() === "data" ? new Uint8Array(raw[i + 1]!) : raw[i + 1]!.toString();
    const decoded = decodeEntry(names.coordination, fields);
    if (decoded._tag === "Success" && decoded.success.message_type === "CoordinationResponse" && decoded.success.request_id === requestId) out.push(decoded.success);
  }
  return out;
};

describe("coordination requests from another program", () => {
  test("a worker answers them: a lock for one requester at a time, a barrier once its parties arrived; garbage is dead-lettered; coordinate's own are not answered twice", async () => {
    const worker = redis.worker({ namespace, layers: ["c1"], seeds: 2 });
    await worker.start("coord-worker");

    const first = await ask("lock", "py-a", "dataset", 1_000, { ttl_ms: 60_000 });
    expect(await responseTo(first)).toEqual([expect.objectContaining({ request_id: first, granted: true, holder_id: "py-a", details: expect.objectContaining({ token: 1, operation: "lock", resource_id: "dataset" }) })]);
    const second = await ask("lock", "py-b", "dataset", 300);
    expect(await responseTo(second)).toEqual([expect.objectContaining({ granted: false, holder_id: "py-a" })]);
    const released = await ask("lock", "py-a", "dataset", 300, { release: true });
    expect(await responseTo(released)).toEqual([expect.objectContaining({ granted: true, details: expect.objectContaining({ released: true }) })]);
    const third = await ask("lock", "py-b", "dataset", 300);
    expect(await responseTo(third)).toEqual([expect.objectContaining({ granted: true, holder_id: "py-b", details: expect.objectContaining({ token: 2 }) })]);

    // A barrier of two: the first waits for the second, then both are let through.
    const a = await ask("barrier", "py-a", "epoch-3", 5_000, { parties: 2 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await responses(a)).toEqual([]);
    const b = await ask("barrier", "py-b", "epoch-3", 5_000, { parties: 2 });
    expect(await responseTo(a)).toEqual([expect.objectContaining({ granted: true, details: expect.objectContaining({ arrived: 2, parties: 2 }) })]);
    expect(await responseTo(b)).toEqual([expect.objectContaining({ granted: true })]);

    // Garbage on the stream goes to P.dlq.all, with why.
    await redis.admin.xadd(names.coordination, "*", "data", "{not json", "type", "CoordinationRequest");
    for (let waited = 0; (await redis.admin.xlen(names.dlqAll)) === 0 && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    const letters = (await redis.admin.xrange(names.dlqAll, "-", "+")).map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])));
    expect(letters).toEqual([expect.objectContaining({ type: "CoordinationRequest", stream: names.coordination, code: "invalid_message" })]);

    // esper's own coordinate decides its request itself: one response, not a second from the worker.
    const scope = Scope.makeUnsafe();
    try {
      const bus = await Effect.runPromise(Scope.provide(makeRedisBus({ url: redis.url }), scope));
      const own = coordinationRequest({ operation: "lock", resource_id: "own", requester_id: "esper-a", timeout_ms: 200, source: "test" });
      expect(await Effect.runPromise(coordinate(bus, own, { namespace }))).toMatchObject({ granted: true });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await responses(own.message_id)).toHaveLength(1);
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void));
    }
    expect(await worker.terminate()).toBe(0);
  }, 60_000);
});
