import { Effect, Exit, Scope } from "effect";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { makeTelemetryConsumer } from "../../src/telemetry/consumer.ts";
import type { TelemetryFrame } from "../../src/telemetry/frame.ts";
import { makeTelemetryPublisher } from "../../src/telemetry/publisher.ts";
import { connectOrFail, deleteNamespace, REDIS_URL } from "../support/redis.ts";
import { canonical } from "./support.ts";

let admin: Redis | undefined;
// Namespaces are at most 32 characters (docs/protocol.md).
const NS = `tt${process.pid}${Date.now().toString(36)}`.slice(0, 32);
afterAll(async () => {
  if (admin) {
    await deleteNamespace(admin, `${NS}.`);
    await admin.quit();
  }
});

/** A publisher and Tamiyo's consumer of `layers` on Redis, in `scope`; the consumer's frames land in `frames`. */
const openPipeline = (scope: Scope.Scope, layers: readonly string[], frames: TelemetryFrame[], publisherOptions: Omit<Parameters<typeof makeTelemetryPublisher>[1], "namespace"> = {}) =>
  Effect.runPromise(
    Scope.provide(scope)(
      Effect.gen(function* () {
        const bus = yield* makeRedisBus({ url: REDIS_URL });
        const consumer = yield* makeTelemetryConsumer(bus, { namespace: NS, layers, blockMs: 50, onTelemetry: (c) => frames.push(...c.frames) });
        const publisher = yield* makeTelemetryPublisher(bus, { namespace: NS, ...publisherOptions });
        return { publisher, consumer };
      }),
    ),
  );

describe("telemetry over Redis", () => {
  it("reaches Tamiyo's reader whole: every seed of every window, claim check included", async () => {
    admin = await connectOrFail();
    const scope = await Effect.runPromise(Scope.make());
    try {
      const frames: TelemetryFrame[] = [];
      const { publisher, consumer } = await openPipeline(scope, ["L1", "L2"], frames, { batchSize: 300, claimCheckThreshold: 64 * 1024, maxEntryBytes: 1 << 30 });
      const columns = ["mean", "gradient_norm"];
      for (let step = 1; step <= 3; step++) {
        publisher.publishWindow("L1", { window: [step - 1, step], step }, { columns, rows: Float32Array.from({ length: 2 * 1000 }, (_, i) => step * 10_000 + i) });
        publisher.publishWindow("L2", { window: [step - 1, step], step }, { columns, rows: Float32Array.from({ length: 2 * 10 }, (_, i) => i) });
      }
      // One oversize window: a single record larger than the claim threshold.
      publisher.publishWindow("L1", { window: [3, 4] }, new Map([[0, Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`m${i}`, i]))]]));
      await Effect.runPromise(publisher.flush);
      expect(publisher.stats()).toMatchObject({ records: 3 * 1010 + 1, recordsWritten: 3 * 1010 + 1, dropped: 0, claims: 1 });
      await vi.waitFor(() => expect(consumer.stats().records).toBe(3 * 1010 + 1), { timeout: 10_000, interval: 20 });
      expect(consumer.stats()).toMatchObject({ rejected: 0, claims: 1, claimsLost: 0 });
      const l1 = frames.filter((f) => f.layerId === "L1" && f.window[1] === 2).map(canonical);
      expect(Object.keys(Object.assign({}, ...l1.map((f) => f.records)))).toHaveLength(1000);
      expect(l1.find((f) => "999" in f.records)!.records["999"]).toEqual({ mean: 21998, gradient_norm: 21999 });
      const big = frames.find((f) => f.window[1] === 4)!;
      expect(canonical(big).records["0"]!.m19999).toBe(19_999);
      expect(await admin.xlen(`${NS}.telemetry.layer.{L1}`)).toBeGreaterThan(0);
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void));
    }
  });

  it("holds every value of windows written back to back, though batch buffers are used again once Redis has them", async () => {
    admin ??= await connectOrFail();
    const scope = await Effect.runPromise(Scope.make());
    try {
      const frames: TelemetryFrame[] = [];
      const { publisher, consumer } = await openPipeline(scope, ["L3"], frames);
      // Entries of ~50 KB: large enough to leave through the zero-copy XADD, in reused buffers.
      const seeds = 4096;
      const windows = 12;
      for (let w = 0; w < windows; w++) {
        publisher.publishWindow("L3", { window: [w, w + 1], step: w + 1 }, { columns: ["mean", "gradient_norm", "alpha"], rows: Float32Array.from({ length: 3 * seeds }, (_, i) => w * 100_000 + i) });
        if (w % 3 === 2) await Effect.runPromise(publisher.settle);
      }
      await Effect.runPromise(publisher.flush);
      expect(publisher.stats()).toMatchObject({ records: windows * seeds, recordsWritten: windows * seeds, dropped: 0 });
      await vi.waitFor(() => expect(consumer.stats().records).toBe(windows * seeds), { timeout: 10_000, interval: 20 });
      for (const frame of frames) {
        const w = frame.window[0];
        const { records } = canonical(frame);
        for (const [seed, metrics] of Object.entries(records)) {
          const i = 3 * Number(seed);
          expect(metrics).toEqual({ mean: w * 100_000 + i, gradient_norm: w * 100_000 + i + 1, alpha: w * 100_000 + i + 2 });
        }
      }
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void));
    }
  });
});
