import { Clock, Effect, Exit, Result, Scope } from "effect";
import { TestClock } from "effect/testing";
import { afterEach, describe, expect, it } from "vitest";
import { BusError, type Bus } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import * as P from "../../src/protocol/index.ts";
import { claimOf } from "../../src/telemetry/claim-check.ts";
import { decodeTelemetryEntry } from "../../src/telemetry/decode.ts";
import { makeTelemetryPublisher, type TelemetryPublisher, type TelemetryPublisherConfig } from "../../src/telemetry/publisher.ts";
import { TELEMETRY_DEFAULTS } from "../../src/telemetry/options.ts";
import { canonical, FAST_PATHS, withFastPaths } from "./support.ts";

/**
 * The publisher, on either path (fast paths on: bytes written by hand; off: the protocol's
 * builders and codec): every behaviour below holds for both, except how batch buffers are used
 * again, which only the fast path has. Time is a TestClock wherever it matters.
 */

const NS = "t";
const names = P.streams(NS);
const scopes: Scope.Closeable[] = [];
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void));
});

const open = async () => {
  const scope = await Effect.runPromise(Scope.make());
  scopes.push(scope);
  return scope;
};

/** A publisher in a scope closed after the test; on `clock` when given, else the live one. */
const start = async (config: TelemetryPublisherConfig = {}, bus: Bus = new MemoryBus(), clock?: Clock.Clock): Promise<{ bus: Bus; publisher: TelemetryPublisher }> => {
  const make = makeTelemetryPublisher(bus, { namespace: NS, batchWindowMs: 60_000, ...config });
  const publisher = await Effect.runPromise(Scope.provide(await open())(clock === undefined ? make : Effect.provideService(make, Clock.Clock, clock)));
  return { bus, publisher };
};

const testClock = async () => Effect.runPromise(Scope.provide(await open())(TestClock.make({ warningDelay: "1 hour" })));

/** A bus whose writes wait until the test lets them through: one at a time, or all from then on. */
const gated = () => {
  const inner = new MemoryBus();
  const waiting: (() => void)[] = [];
  let opened = false;
  const pass = Effect.promise(() => (opened ? Promise.resolve() : new Promise<void>((resolve) => waiting.push(resolve))));
  const bus: Bus = { ...inner, publishMany: (entries, maxLen) => Effect.andThen(pass, inner.publishMany(entries, maxLen)) } as Bus;
  return {
    bus,
    releaseOne: () => waiting.shift()!(),
    openUp: () => {
      opened = true;
      for (const resume of waiting.splice(0)) resume();
    },
  };
};

const entriesOf = (bus: Bus, layer = "L1", kind: "telemetry" | "claim" = "telemetry") =>
  Effect.runPromise(bus.range(kind === "telemetry" ? names.telemetry(layer) : names.layerKey("claim", layer)));

const read = (fields: Readonly<Record<string, unknown>>) => {
  const decoded = decodeTelemetryEntry(names.telemetry("L1"), fields);
  if (Result.isFailure(decoded)) throw decoded.failure;
  return decoded.success;
};

const COLUMNS = ["mean", "variance", "alpha"];
/** `seeds` rows; seed s has mean s, variance s/2 (float32-exact), alpha NaN on odd seeds. */
const rows = (seeds: number) => {
  const r = new Float32Array(seeds * 3);
  for (let s = 0; s < seeds; s++) r.set([s, s / 2, s % 2 ? Number.NaN : 0.25], s * 3);
  return { columns: COLUMNS, rows: r };
};
const expected = (s: number) => (s % 2 ? { mean: s, variance: s / 2 } : { mean: s, variance: s / 2, alpha: 0.25 });

describe.each(FAST_PATHS)("with fast paths %s", (_, on) => {
  withFastPaths(on);

  describe("a window", () => {
    it("goes out as one LayerHealthReport that every reader decodes, NaN values left out", async () => {
      const { bus, publisher } = await start();
      expect(publisher.publishWindow("L1", { window: [11, 20], step: 20, totalSeeds: 8, activeSeeds: 2, performanceSummary: { epoch: 3 } }, rows(4))).toBe(4);
      await Effect.runPromise(publisher.flush);
      const [entry] = await entriesOf(bus);
      expect(entry!.fields.type).toBe("LayerHealthReport");
      expect(entry!.fields.enc).toBe("msgpack");
      const message = P.decodeEntry(names.telemetry("L1"), entry!.fields);
      if (Result.isFailure(message)) throw message.failure;
      expect(message.success).toMatchObject({
        message_type: "LayerHealthReport",
        layer_id: "L1",
        source: TELEMETRY_DEFAULTS.source,
        total_seeds: 8,
        active_seeds: 2,
        telemetry_window: [11, 20],
        performance_summary: { epoch: 3, step: 20 },
        health_metrics: { "0": expected(0), "1": expected(1), "2": expected(2), "3": expected(3) },
      });
      expect(publisher.stats()).toMatchObject({ records: 4, recordsWritten: 4, entries: 1, dropped: 0, queued: 0 });
    });

    it("is taken as a map of seed id to metrics, or an object keyed by seed id, alike", async () => {
      const { bus, publisher } = await start();
      publisher.publishWindow("L1", { window: [0, 1] }, new Map([[7, { mean: 1.5, loss: Number.NaN }]]));
      publisher.publishWindow("L1", { window: [1, 2] }, { "9": { mean: -2 } });
      await Effect.runPromise(publisher.flush);
      const frames = (await entriesOf(bus)).flatMap((e) => read(e.fields).frames);
      expect(frames.map((f) => canonical(f).records)).toEqual([{ "7": { mean: 1.5 } }, { "9": { mean: -2 } }]);
    });

    it("larger than batchSize is cut into entries of at most batchSize seeds, same window, every seed once", async () => {
      const { bus, publisher } = await start({ batchSize: 100 });
      publisher.publishWindow("L1", { window: [0, 10], step: 10 }, rows(1050));
      await Effect.runPromise(publisher.flush);
      const entries = await entriesOf(bus);
      expect(entries).toHaveLength(11);
      const seeds: number[] = [];
      for (const e of entries) {
        const [frame] = read(e.fields).frames;
        expect(frame!.seeds.length).toBeLessThanOrEqual(100);
        expect(frame!.window).toEqual([0, 10]);
        expect(frame!.totalSeeds).toBe(1050);
        seeds.push(...frame!.seeds);
      }
      expect(seeds).toEqual(Array.from({ length: 1050 }, (_, i) => i));
    });

    it("is cut so that no entry passes maxEntryBytes, one window or many in a TelemetryBatch", async () => {
      const { bus, publisher } = await start({ maxEntryBytes: 4096 });
      publisher.publishWindow("L1", { window: [0, 1] }, rows(1000));
      for (let step = 2; step < 60; step++) publisher.publishWindow("L1", { window: [step - 1, step] }, rows(7));
      await Effect.runPromise(publisher.flush);
      const entries = await entriesOf(bus);
      expect(entries.length).toBeGreaterThan(5);
      expect(entries.some((e) => e.fields.type === "TelemetryBatch")).toBe(true);
      for (const e of entries) expect(e.fields.data.length).toBeLessThanOrEqual(4096);
      expect(entries.reduce((n, e) => n + read(e.fields).frames.reduce((m, f) => m + f.seeds.length, 0), 0)).toBe(1000 + 58 * 7);
    });

    it("without seeds still goes out (it may carry the epoch tick)", async () => {
      const { bus, publisher } = await start();
      publisher.publishWindow("L1", { window: [0, 1], performanceSummary: { epoch: 4 } }, {});
      await Effect.runPromise(publisher.flush);
      const [frame] = read((await entriesOf(bus))[0]!.fields).frames;
      expect(frame!.performanceSummary).toEqual({ epoch: 4 });
      expect(frame!.seeds.length).toBe(0);
    });

    it("no reader would accept is refused at the call", async () => {
      const { publisher } = await start();
      expect(() => publisher.publishWindow("bad layer", { window: [0, 1] }, {})).toThrow(RangeError);
      expect(() => publisher.publishWindow("L1", { window: [0, Number.NaN] }, {})).toThrow(RangeError);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, { "01": { mean: 1 } })).toThrow(RangeError);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, new Map([[-1, { mean: 1 }]]))).toThrow(RangeError);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, { "1": { mean: "high" as unknown as number } })).toThrow(TypeError);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, { columns: COLUMNS, rows: new Float32Array(4) })).toThrow(RangeError);
      const long = "m".repeat(P.DECODE_LIMITS.maxStringLength + 1);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, { columns: [long], rows: new Float32Array(1) })).toThrow(RangeError);
      expect(() => publisher.publishWindow("L1", { window: [0, 1] }, { "1": { [long]: 1 } })).toThrow(RangeError);
    });

    it("refused at the call leaves nothing half-written: the windows around it go out whole (regression: they went out as one corrupt entry)", async () => {
      const { bus, publisher } = await start();
      publisher.publishWindow("L1", { window: [0, 1] }, { "0": { mean: 1 } });
      expect(() => publisher.publishWindow("L1", { window: [1, 2] }, { "1": { mean: 2 }, "2": { mean: "x" as unknown as number } })).toThrow(TypeError);
      publisher.publishWindow("L1", { window: [2, 3] }, { "3": { mean: 3 } });
      await Effect.runPromise(publisher.flush);
      const frames = (await entriesOf(bus)).flatMap((e) => read(e.fields).frames);
      expect(frames.map((f) => [f.window, canonical(f).records])).toEqual([
        [[0, 1], { "0": { mean: 1 } }],
        [[2, 3], { "3": { mean: 3 } }],
      ]);
    });
  });

  describe("batching", () => {
    it("puts several windows of a small layer in one TelemetryBatch of reports", async () => {
      const { bus, publisher } = await start();
      for (let step = 1; step <= 5; step++) publisher.publishWindow("L1", { window: [step - 1, step], step }, rows(3));
      publisher.publishWindow("L2", { window: [0, 1] }, rows(2));
      await Effect.runPromise(publisher.flush);
      const [entry] = await entriesOf(bus);
      expect(entry!.fields.type).toBe("TelemetryBatch");
      const message = P.decodeEntry(names.telemetry("L1"), entry!.fields);
      expect(Result.isSuccess(message) && message.success).toMatchObject({ message_type: "TelemetryBatch", batch_size: 5, compression: null });
      expect(read(entry!.fields).frames.map((f) => f.window)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
      expect(await entriesOf(bus, "L2")).toHaveLength(1);
    });

    it("writes an open batch once it has waited batchWindowMs on the publisher's clock, not before", async () => {
      const clock = await testClock();
      const { bus, publisher } = await start({ batchWindowMs: 20 }, new MemoryBus(), clock);
      publisher.publishWindow("L1", { window: [0, 1] }, rows(3));
      await Effect.runPromise(clock.adjust(10));
      publisher.publishWindow("L2", { window: [0, 1] }, rows(3));
      await Effect.runPromise(clock.adjust(9));
      await Effect.runPromise(publisher.settle);
      expect([...(await entriesOf(bus)), ...(await entriesOf(bus, "L2"))]).toHaveLength(0);
      await Effect.runPromise(clock.adjust(1));
      await Effect.runPromise(publisher.settle);
      expect(await entriesOf(bus)).toHaveLength(1);
      expect(await entriesOf(bus, "L2")).toHaveLength(0);
      // L2 opened 10 ms later: its own 20 ms, not another full window after the timer that sealed L1.
      await Effect.runPromise(clock.adjust(10));
      await Effect.runPromise(publisher.settle);
      expect(await entriesOf(bus, "L2")).toHaveLength(1);
    });

    it("stamps reports and batches with the time on the publisher's clock", async () => {
      const clock = await testClock();
      await Effect.runPromise(clock.setTime(1_700_000_000_250));
      const { bus, publisher } = await start({}, new MemoryBus(), clock);
      publisher.publishWindow("L1", { window: [0, 1] }, rows(2));
      publisher.publishWindow("L1", { window: [1, 2] }, rows(2));
      await Effect.runPromise(publisher.flush);
      const [entry] = await entriesOf(bus);
      const message = P.decodeEntry(names.telemetry("L1"), entry!.fields);
      if (Result.isFailure(message) || message.success.message_type !== "TelemetryBatch") throw new Error("expected a TelemetryBatch");
      expect([message.success.timestamp, ...message.success.messages.map((m) => m.timestamp)]).toEqual([1_700_000_000.25, 1_700_000_000.25, 1_700_000_000.25]);
    });

    it("with batchWindowMs 0 writes every window as it comes", async () => {
      const { bus, publisher } = await start({ batchWindowMs: 0 });
      publisher.publishWindow("L1", { window: [0, 1] }, rows(3));
      publisher.publishWindow("L1", { window: [1, 2] }, rows(3));
      await Effect.runPromise(publisher.settle);
      expect(await entriesOf(bus)).toHaveLength(2);
    });

    it("is kasmina's telemetry sink: a window runs from the layer's previous step to this one", async () => {
      const { bus, publisher } = await start();
      publisher.sink("L1", 10, rows(2).rows, COLUMNS as never);
      publisher.sink("L1", 20, rows(2).rows, COLUMNS as never);
      await Effect.runPromise(publisher.flush);
      expect(read((await entriesOf(bus))[0]!.fields).frames.map((f) => [f.window, f.performanceSummary])).toEqual([
        [[1, 10], { step: 10 }],
        [[11, 20], { step: 20 }],
      ]);
    });
  });

  describe("compression, claim check, signatures", () => {
    it("deflates when asked (enc msgpack+deflate), and the entry shrinks", async () => {
      const { bus, publisher } = await start({ compression: "deflate" });
      publisher.publishWindow("L1", { window: [0, 1] }, rows(500));
      await Effect.runPromise(publisher.flush);
      const [entry] = await entriesOf(bus);
      expect(entry!.fields.enc).toBe("msgpack+deflate");
      expect(read(entry!.fields).frames[0]!.seeds.length).toBe(500);
      expect(publisher.stats().bytes).toBeLessThan(publisher.stats().rawBytes / 2);
    });

    it("stores an entry over claimCheckThreshold in the claim stream; the stream carries a reference", async () => {
      const { bus, publisher } = await start({ claimCheckThreshold: 2_000, maxEntryBytes: 1e9 });
      publisher.publishWindow("L1", { window: [0, 1], totalSeeds: 300 }, rows(300));
      await Effect.runPromise(publisher.flush);
      const [reference] = await entriesOf(bus);
      expect(reference!.fields.data.length).toBeLessThan(1_000);
      const [frame] = read(reference!.fields).frames;
      const claim = claimOf(frame!);
      expect(claim).toMatchObject({ key: names.layerKey("claim", "L1"), type: "LayerHealthReport", enc: "msgpack", records: 300 });
      expect(frame!.seeds.length).toBe(0);
      const [payload] = await entriesOf(bus, "L1", "claim");
      expect(payload!.id).toBe(claim!.id);
      expect(read(payload!.fields).frames[0]!.seeds.length).toBe(300);
      expect(publisher.stats()).toMatchObject({ claims: 1, entries: 1, recordsWritten: 300 });
    });

    it("drops (and counts) an entry over maxClaimBytes", async () => {
      const { bus, publisher } = await start({ claimCheckThreshold: 1_000, maxClaimBytes: 2_000, maxEntryBytes: 1e9 });
      publisher.publishWindow("L1", { window: [0, 1] }, rows(300));
      await Effect.runPromise(publisher.flush);
      expect(await entriesOf(bus)).toHaveLength(0);
      expect(publisher.stats()).toMatchObject({ dropped: 300, errors: 1 });
    });

    it("signs entries with the deployment's key", async () => {
      const { bus, publisher } = await start({ hmacKey: "secret" });
      publisher.publishWindow("L1", { window: [0, 1] }, rows(2));
      await Effect.runPromise(publisher.flush);
      const [entry] = await entriesOf(bus);
      const ok = P.decodeEntry(names.telemetry("L1"), entry!.fields, { hmacKey: "secret", requireSig: true });
      expect(Result.isSuccess(ok)).toBe(true);
    });
  });
  describe("backpressure", () => {
    it("backlogAtMost resolves once the writes have taken the backlog down to the bound, not before", async () => {
      const gate = gated();
      const { publisher } = await start({ batchSize: 10, entriesPerWrite: 1 }, gate.bus);
      for (let i = 0; i < 4; i++) publisher.publishWindow("L1", { window: [i, i + 1] }, rows(10));
      // One entry is being written, three wait.
      const entryBytes = publisher.backlogBytes() / 3;
      // A waiter for a looser bound, registered first, is resumed in the same pass as the stricter
      // one would be, and after it: once it has resumed, the stricter one would have too.
      const looser = Effect.runPromise(publisher.backlogAtMost(2 * entryBytes));
      let resolved = false;
      const waiting = Effect.runPromise(publisher.backlogAtMost(entryBytes)).then(() => (resolved = true));
      gate.releaseOne();
      await looser;
      expect(publisher.backlogBytes()).toBe(2 * entryBytes);
      expect(resolved).toBe(false);
      gate.releaseOne();
      await waiting;
      expect(publisher.backlogBytes()).toBeLessThanOrEqual(entryBytes);
      await Effect.runPromise(publisher.backlogAtMost(1e9));
      gate.openUp();
      await Effect.runPromise(publisher.flush);
      expect(publisher.stats().recordsWritten).toBe(40);
    });
  });

  describe("losses are counted, never thrown at the data plane", () => {
    it("when the bus refuses", async () => {
      const refusing: Bus = { ...new MemoryBus(), publishMany: () => Effect.fail(new BusError({ reason: "command_failed", message: "no" })) } as Bus;
      const { publisher } = await start({}, refusing);
      publisher.publishWindow("L1", { window: [0, 1] }, rows(10));
      await Effect.runPromise(publisher.flush);
      expect(publisher.stats()).toMatchObject({ records: 10, recordsWritten: 0, dropped: 10, errors: 1 });
      expect(publisher.stats().lastError).toContain("no");
    });

    it("when more than maxQueuedBytes wait for the bus: the oldest go", async () => {
      const gate = gated();
      const { publisher } = await start({ batchSize: 10, maxQueuedBytes: 2_000, entriesPerWrite: 1 }, gate.bus);
      for (let i = 0; i < 20; i++) publisher.publishWindow("L1", { window: [i, i + 1] }, rows(10));
      const { dropped, queuedBytes } = publisher.stats();
      expect(dropped).toBeGreaterThan(0);
      expect(queuedBytes).toBeLessThanOrEqual(2_000);
      gate.openUp();
      await Effect.runPromise(publisher.flush);
      const s = publisher.stats();
      expect(s.recordsWritten + s.dropped).toBe(200);
      expect(s.recordsWritten).toBeGreaterThan(0);
    });
  });
});

describe("the fast-path switch", () => {
  withFastPaths(true);

  it("is read as each window comes: a batch begun on one path is sealed when it turns, and every entry reads alike", async () => {
    const { bus, publisher } = await start();
    publisher.publishWindow("L1", { window: [0, 1] }, rows(3));
    P.setFastPaths(false);
    publisher.publishWindow("L1", { window: [1, 2] }, rows(3));
    publisher.publishWindow("L1", { window: [2, 3] }, rows(3));
    P.setFastPaths(true);
    await Effect.runPromise(publisher.flush);
    const entries = await entriesOf(bus);
    expect(entries.map((e) => e.fields.type)).toEqual(["LayerHealthReport", "TelemetryBatch"]);
    expect(entries.flatMap((e) => read(e.fields).frames.map((f) => [f.window, canonical(f).records]))).toEqual(
      [0, 1, 2].map((w) => [[w, w + 1], { "0": expected(0), "1": expected(1), "2": expected(2) }]),
    );
  });
});

describe("batch buffers (the fast path's)", () => {
  withFastPaths(true);

  /** Window w fills one batch (batchSize 64) with mean = w * 1000 + seed: each entry tells which window it holds. */
  const publishWindow = (publisher: TelemetryPublisher, w: number) =>
    publisher.publishWindow("L1", { window: [w, w + 1] }, { columns: ["mean"], rows: Float32Array.from({ length: 64 }, (_, s) => w * 1000 + s) });
  const windowOf = (data: Uint8Array) => read({ data, type: "LayerHealthReport", enc: "msgpack" }).frames[0]!.values[0]![0]! / 1000;
  /** A bus that is not in-process, answering each entry with `id` and keeping what it was given. */
  const outOfProcess = (id: string) => {
    const given: Uint8Array[] = [];
    const bus = {
      ...new MemoryBus(),
      inProcess: false,
      publishMany: (entries: readonly { fields: { data: Uint8Array } }[]) =>
        Effect.sync(() => {
          for (const e of entries) given.push(e.fields.data);
          return entries.map(() => id);
        }),
    } as unknown as Bus;
    return { bus, given };
  };

  it("are used again once a bus that keeps its own copy has answered with an id", async () => {
    const { bus, given } = outOfProcess("1-1");
    const { publisher } = await start({ batchSize: 64 }, bus);
    const copies: number[] = [];
    for (let w = 0; w < 4; w++) {
      publishWindow(publisher, w);
      await Effect.runPromise(publisher.settle);
      copies.push(windowOf(given[w]!));
    }
    expect(copies).toEqual([0, 1, 2, 3]);
    expect(new Set(given.map((d) => d.buffer)).size).toBe(1);
  });

  it("are never used again while the bus holds them for later (an empty id: Redis away)", async () => {
    const { bus, given } = outOfProcess("");
    const { publisher } = await start({ batchSize: 64 }, bus);
    for (let w = 0; w < 4; w++) {
      publishWindow(publisher, w);
      await Effect.runPromise(publisher.settle);
    }
    expect(given.map(windowOf)).toEqual([0, 1, 2, 3]);
  });

  it("are never used again on an in-process bus, which keeps the very bytes it is given", async () => {
    const { bus, publisher } = await start({ batchSize: 64 });
    for (let w = 0; w < 4; w++) {
      publishWindow(publisher, w);
      await Effect.runPromise(publisher.settle);
    }
    expect((await entriesOf(bus)).map((e) => windowOf(e.fields.data))).toEqual([0, 1, 2, 3]);
  });
});
