import { randomBytes } from "node:crypto";
import { Effect, Exit, Scope } from "effect";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BusError, type EntryFields } from "../../src/bus/bus.ts";
import { makeRedisBus, type RedisBus } from "../../src/bus/redis-bus.ts";
import { setFastPaths } from "../../src/protocol/fast/switch.ts";
import { ZERO_COPY_MIN_BYTES } from "../../src/bus/redis-zero-copy-xadd.ts";
import { connectOrFail, deleteNamespace, REDIS_URL, uniqueNamespace } from "../support/redis.ts";

/**
 * Batches holding a large value are written with their own RESP framing, straight from the
 * callers' buffers (redis-zero-copy-xadd.ts), while fast paths are on. Whatever Redis stores
 * must be what a pipeline would have stored, byte for byte and in order.
 */

let admin: Redis;
let scope: Scope.Closeable;
let bus: RedisBus;
const NS = uniqueNamespace("zero-copy");
const key = (name: string) => `${NS}.${name}`;

beforeAll(async () => {
  admin = await connectOrFail();
  scope = await Effect.runPromise(Scope.make());
  bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL })));
});
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void));
  await deleteNamespace(admin, NS);
  await admin.quit();
});

const large = (bytes: number, seed: number): Uint8Array => {
  const data = new Uint8Array(randomBytes(bytes));
  data[0] = seed;
  return data;
};

describe("XADDs of large values", () => {
  it("store every value byte for byte, in order, mixed with small entries and non-ASCII strings", async () => {
    const stream = key("mixed");
    const entries: EntryFields[] = [
      { data: large(200_000, 1), type: "LayerHealthReport", enc: "msgpack" },
      { data: new Uint8Array([1, 2, 3]), type: "small" },
      { data: large(ZERO_COPY_MIN_BYTES, 3), type: "Ünïcödé ✓", note: "\r\n$3\r\n" },
      // A subarray: only its own bytes go out, not the rest of its buffer.
      { data: large(100_000, 4).subarray(1_000, 90_000), type: "slice" },
      { data: new Uint8Array(0), type: "empty", big: large(50_000, 5) },
    ];
    const ids = await Effect.runPromise(bus.publishMany(entries.map((fields) => ({ stream, fields }))));
    const stored = await Effect.runPromise(bus.range(stream));
    expect(stored.map((e) => e.id)).toEqual(ids);
    stored.forEach((e, i) => {
      const sent = entries[i]! as Readonly<Record<string, Uint8Array | string>>;
      expect(Buffer.from(e.fields.data)).toEqual(Buffer.from(sent.data!));
      for (const name of Object.keys(sent).filter((n) => n !== "data" && n !== "big")) expect(e.fields[name]).toBe(sent[name]);
    });
    const [big] = await admin.xrangeBuffer(stream, ids[4]!, ids[4]!);
    expect(big![1][5]).toEqual(Buffer.from(entries[4]!.big as Uint8Array));
  });

  it("leave the caller's buffer free once the ids are back: Redis holds its own copy", async () => {
    const stream = key("reuse");
    const data = large(150_000, 7);
    const before = Buffer.from(data);
    await Effect.runPromise(bus.publishMany([{ stream, fields: { data, type: "t" } }]));
    data.fill(0);
    const [entry] = await Effect.runPromise(bus.range(stream));
    expect(Buffer.from(entry!.fields.data)).toEqual(before);
  });

  it("refuse a batch the way a pipeline does: an entry Redis rejects fails the call, the others are written", async () => {
    const good = key("good");
    const wrong = key("a-hash");
    await admin.hset(wrong, "f", "v");
    const exit = await Effect.runPromiseExit(
      bus.publishMany([
        { stream: good, fields: { data: large(40_000, 1), type: "t" } },
        { stream: wrong, fields: { data: large(40_000, 2), type: "t" } },
        { stream: good, fields: { data: large(40_000, 3), type: "t" } },
      ]),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined;
    expect(error?._tag === "Fail" && error.error instanceof BusError && error.error.reason).toBe("command_failed");
    expect((await Effect.runPromise(bus.range(good))).map((e) => e.fields.data[0])).toEqual([1, 3]);
  });

  it("go through ioredis's own pipeline with fast paths off, and are stored alike", async () => {
    const entries: EntryFields[] = [
      { data: large(60_000, 8), type: "t" },
      { data: new Uint8Array([9]), type: "small" },
    ];
    const pipeline = vi.spyOn(Redis.prototype, "pipeline");
    const before = setFastPaths(false);
    try {
      const stream = key("switched-off");
      await Effect.runPromise(bus.publishMany(entries.map((fields) => ({ stream, fields }))));
      expect(pipeline).toHaveBeenCalledTimes(1);
      const stored = await Effect.runPromise(bus.range(stream));
      expect(stored.map((e) => Buffer.from(e.fields.data))).toEqual(entries.map((e) => Buffer.from(e.data)));
      setFastPaths(true);
      await Effect.runPromise(bus.publishMany(entries.map((fields) => ({ stream, fields }))));
      expect(pipeline).toHaveBeenCalledTimes(1);
    } finally {
      setFastPaths(before);
      pipeline.mockRestore();
    }
  });
});
