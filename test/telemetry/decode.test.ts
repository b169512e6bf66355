import { fc, test } from "@fast-check/vitest";
import { Effect, Exit, Result, Scope } from "effect";
import { describe, expect, it, vi } from "vitest";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import type { Entry } from "../../src/bus/bus.ts";
import * as P from "../../src/protocol/index.ts";
import { TelemetryScanner } from "../../src/protocol/fast/telemetry-scanner.ts";
import { decodeTelemetryEntry } from "../../src/telemetry/decode.ts";
import { makeTelemetryPublisher } from "../../src/telemetry/publisher.ts";
import type { SeedRows } from "../../src/telemetry/records.ts";
import { SAMPLES } from "../protocol/samples.ts";
import { canonical, expectSameContent, slowDecode, withFastPaths } from "./support.ts";

/**
 * The fast reader (protocol/fast/telemetry-scanner.ts) must read every entry exactly as the
 * protocol's decoder does: same verdict, same records. It may step aside to the slow path; it
 * may never disagree. These run with fast paths on, but where a test says otherwise.
 */

withFastPaths(true);

const STREAM = "t.telemetry.layer.{L1}";
const msgpack = (message: unknown, type = (message as { message_type?: string }).message_type ?? "LayerHealthReport") => ({
  data: P.encodeBody(message, "msgpack"),
  type,
  enc: "msgpack",
});

/** Entries written by a real publisher on a MemoryBus. */
const published = async (windows: ReadonlyArray<{ layer: string; rows: SeedRows; step: number }>, options = {}): Promise<Entry[]> => {
  const bus = new MemoryBus();
  const scope = await Effect.runPromise(Scope.make());
  const publisher = await Effect.runPromise(Scope.provide(scope)(makeTelemetryPublisher(bus, { namespace: "t", ...options })));
  for (const w of windows) publisher.publishWindow(w.layer, { window: [w.step - 1, w.step], step: w.step, totalSeeds: 64 }, w.rows);
  await Effect.runPromise(publisher.flush);
  await Effect.runPromise(Scope.close(scope, Exit.void));
  const layers = [...new Set(windows.map((w) => w.layer))];
  return (await Promise.all(layers.map((l) => Effect.runPromise(bus.range(`t.telemetry.layer.{${l}}`))))).flat();
};

const float32 = fc.float({ noDefaultInfinity: false });
const rowsArb = fc
  .record({
    columns: fc.uniqueArray(fc.constantFrom("mean", "variance", "sparsity", "alpha", "drift", "a", "x".repeat(40), "gradient_norm"), { minLength: 0, maxLength: 6 }),
    seeds: fc.nat({ max: 40 }),
  })
  .chain(({ columns, seeds }) =>
    fc.record({
      columns: fc.constant(columns),
      rows: fc.array(fc.oneof(float32, fc.constant(Number.NaN), fc.constant(0), fc.integer({ min: -70_000, max: 70_000 })), { minLength: seeds * columns.length, maxLength: seeds * columns.length }),
    }),
  )
  .map(({ columns, rows }) => ({ columns, rows: Float64Array.from(rows) }));

describe("esper's own entries", () => {
  test.prop([fc.array(rowsArb, { minLength: 1, maxLength: 4 }), fc.constantFrom(1, 7, 1024)], { numRuns: 100 })(
    "read the same by the fast and the slow path, and hold every non-NaN value",
    async (windows, batchSize) => {
      const entries = await published(
        windows.map((rows, i) => ({ layer: "L1", rows, step: i + 1 })),
        { batchSize, batchWindowMs: 60_000 },
      );
      const seen = new Map<string, number>();
      for (const entry of entries) {
        const fast = decodeTelemetryEntry(STREAM, entry.fields);
        expectSameContent(fast, slowDecode(STREAM, entry.fields));
        if (Result.isFailure(fast)) throw fast.failure;
        for (const frame of fast.success.frames) {
          const { records } = canonical(frame);
          for (const [seed, metrics] of Object.entries(records)) for (const [k, v] of Object.entries(metrics)) seen.set(`${frame.window[1]}/${seed}/${k}`, v);
        }
      }
      windows.forEach(({ columns, rows }, w) => {
        for (let i = 0; i < rows.length; i++) {
          const key = `${w + 1}/${Math.floor(i / columns.length)}/${columns[i % columns.length]}`;
          if (Number.isNaN(rows[i])) expect(seen.has(key)).toBe(false);
          else expect(seen.get(key)).toBe(rows[i]);
        }
      });
    },
  );

  it("take the fast path (else the agreement above would prove nothing about it)", async () => {
    const rows = Float32Array.from({ length: 2000 * 3 }, (_, i) => (i % 7 === 0 ? Number.NaN : i / 3));
    const entries = await published(
      [0, 1, 2].map((step) => ({ layer: "L1", rows: { columns: ["mean", "alpha", "gradient_norm"], rows: step === 1 ? rows.subarray(0, 30) : rows }, step })),
      { batchSize: 1500, batchWindowMs: 60_000 },
    );
    expect(new Set(entries.map((e) => e.fields.type))).toEqual(new Set(["LayerHealthReport", "TelemetryBatch"]));
    for (const e of entries) expect(new TelemetryScanner().scan(e.fields.data, e.fields.type)).toBeDefined();
  });

  test.prop([fc.nat(), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 })], { numRuns: 500 })(
    "with bytes changed at random are still read alike by both paths",
    async (seed, flips) => {
      const rows = Float32Array.from({ length: 12 * 3 }, (_, i) => (i % 5 === 0 ? Number.NaN : ((seed + i) % 97) / 7));
      const [entry] = await published([{ layer: "L1", rows: { columns: ["mean", "alpha", "gradient_norm"], rows }, step: 3 }]);
      const data = Uint8Array.from(entry!.fields.data);
      for (const [at, value] of flips) data[at % data.length] = value;
      const fields = { ...entry!.fields, data };
      expectSameContent(decodeTelemetryEntry(STREAM, fields), slowDecode(STREAM, fields));
    },
  );
});

// Mostly valid, each part sometimes wrong: both paths must then refuse, or both read it alike.
const seedKey = fc.oneof({ weight: 100, arbitrary: fc.nat({ max: 300 }).map(String) }, fc.constantFrom("01", "-1", "a", "", "123456789012"));
const metricName = fc.oneof({ weight: 60, arbitrary: fc.constantFrom("mean", "alpha", "a".repeat(33), "7") }, fc.constantFrom("__proto__", "é"));
const metricValue = fc.oneof({ weight: 60, arbitrary: fc.double() }, { weight: 10, arbitrary: fc.integer() }, fc.constantFrom(null, "x", true, 2 ** 60, -(2 ** 40)));
const metrics = fc.oneof({ weight: 40, arbitrary: fc.dictionary(metricName, metricValue, { maxKeys: 4 }) }, fc.constantFrom(null, [], 5));
const report = fc.record({
  message_type: fc.oneof({ weight: 40, arbitrary: fc.constant("LayerHealthReport") }, fc.constant("Heartbeat")),
  message_id: fc.oneof({ weight: 40, arbitrary: fc.uuid() }, fc.constant("")),
  timestamp: fc.oneof({ weight: 40, arbitrary: fc.double({ min: 0, max: 2e9, noNaN: true }) }, fc.constant(Number.NaN)),
  source: fc.constant("trainer"),
  version: fc.oneof({ weight: 40, arbitrary: fc.constant("1.0") }, fc.constant("2.0")),
  layer_id: fc.oneof({ weight: 40, arbitrary: fc.constant("L1") }, fc.constant("a b")),
  total_seeds: fc.oneof({ weight: 40, arbitrary: fc.nat() }, fc.constant(-1)),
  active_seeds: fc.nat(),
  telemetry_window: fc.oneof({ weight: 40, arbitrary: fc.tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer()) }, fc.constant([1])),
  performance_summary: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue()),
  anomalies: fc.array(fc.jsonValue(), { maxLength: 2 }),
  health_metrics: fc.oneof({ weight: 20, arbitrary: fc.dictionary(seedKey, metrics, { maxKeys: 6 }) }, fc.constant(null)),
});

describe("entries written by others (msgpackr, any key order)", () => {
  test.prop([report, fc.boolean()], { numRuns: 600 })("are read alike by both paths", (r, healthFirst) => {
    const { health_metrics, ...rest } = r;
    const message = healthFirst ? { health_metrics, ...rest } : r;
    const fields = msgpack(message, "LayerHealthReport");
    expectSameContent(decodeTelemetryEntry(STREAM, fields), slowDecode(STREAM, fields));
  });

  it("the generator gives the fast path work, and the slow path refusals", () => {
    const outcomes = fc.sample(report, 500).map((r) => {
      const fields = msgpack(r, "LayerHealthReport");
      return { fast: new TelemetryScanner().scan(fields.data, fields.type) !== undefined, ok: Result.isSuccess(slowDecode(STREAM, fields)) };
    });
    expect(outcomes.filter((o) => o.fast).length).toBeGreaterThan(50);
    expect(outcomes.filter((o) => !o.ok).length).toBeGreaterThan(50);
  });

  test.prop([fc.array(report, { minLength: 0, maxLength: 4 })], { numRuns: 200 })("in a TelemetryBatch, too", (reports) => {
    const fields = msgpack({ ...SAMPLES.TelemetryBatch, messages: reports, batch_size: reports.length });
    expectSameContent(decodeTelemetryEntry(STREAM, fields), slowDecode(STREAM, fields));
  });

  it("does not take a str8 name of 121 'y's for a fixstr (0xd9 ^ 0xa0 = 121 = 'y'): regression", () => {
    const name = "y".repeat(121);
    const health_metrics = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [String(i), { [name]: i + 0.5, mean: i }]));
    const fields = msgpack({ ...SAMPLES.LayerHealthReport, health_metrics }, "LayerHealthReport");
    const fast = decodeTelemetryEntry(STREAM, fields);
    expectSameContent(fast, slowDecode(STREAM, fields));
    expect(Result.isSuccess(fast) && canonical(fast.success.frames[0]!).records["3"]).toEqual({ [name]: 3.5, mean: 3 });
  });

  it("are refused as the Schema path refuses them when over a decoding limit, not read by the scanner (regression: it read them)", () => {
    const { maxEntries, maxStringLength } = P.DECODE_LIMITS;
    const options = { maxBytes: 32 * 1024 * 1024 };
    const seeds = Object.fromEntries(Array.from({ length: maxEntries + 1 }, (_, i) => [String(i), { m: 1 }]));
    const metrics = { "0": Object.fromEntries(Array.from({ length: maxEntries + 1 }, (_, i) => [`m${i}`, i])) };
    const name = { "0": { ["m".repeat(maxStringLength + 1)]: 1 } };
    const reports = [seeds, metrics, name].map((health_metrics) => msgpack({ ...SAMPLES.LayerHealthReport, health_metrics }, "LayerHealthReport"));
    const small = { message_type: "LayerHealthReport", message_id: "x", timestamp: 0, source: "", version: "1.0", layer_id: "L1", total_seeds: 0, active_seeds: 0, telemetry_window: [0, 0] };
    const batch = msgpack({ ...SAMPLES.TelemetryBatch, messages: Array.from({ length: maxEntries + 1 }, () => small), batch_size: maxEntries + 1 });
    for (const fields of [...reports, batch]) {
      const slow = slowDecode(STREAM, fields, options);
      expect(Result.isFailure(slow) && (slow.failure as P.ProtocolError).message).toContain("over a decoding limit");
      expectSameContent(decodeTelemetryEntry(STREAM, fields, options), slow);
    }
  });

  it("reads the reference format (JSON, no enc), snapshots and batches of snapshots", () => {
    const json = { data: P.encodeBody(SAMPLES.LayerHealthReport, "reference"), type: "LayerHealthReport" };
    const decoded = decodeTelemetryEntry(STREAM, json);
    expect(Result.isSuccess(decoded) && canonical(decoded.success.frames[0]!).records).toEqual({ "0": { mean: 0.5 }, "7": { mean: -0.5, sparsity: 0.9 } });
    const snapshot = decodeTelemetryEntry(STREAM, msgpack(SAMPLES.SeedMetricsSnapshot));
    expect(Result.isSuccess(snapshot) && snapshot.success.snapshots).toEqual([SAMPLES.SeedMetricsSnapshot]);
    const batch = decodeTelemetryEntry(STREAM, msgpack(SAMPLES.TelemetryBatch));
    expect(Result.isSuccess(batch)).toBe(true);
  });

  it("refuses a message that is not telemetry", () => {
    const decoded = decodeTelemetryEntry(STREAM, msgpack(SAMPLES.Heartbeat));
    expect(Result.isFailure(decoded) && decoded.failure.code).toBe("invalid_message");
  });

  it("refuses an entry over the size limit before reading it", () => {
    const fields = msgpack(SAMPLES.LayerHealthReport);
    const decoded = decodeTelemetryEntry(STREAM, fields, { maxBytes: 10 });
    expect(Result.isFailure(decoded) && decoded.failure.code).toBe("too_large");
  });

  it("checks signatures when the deployment has a key", () => {
    const fields = msgpack(SAMPLES.LayerHealthReport);
    const signed = { ...fields, sig: P.signEntry("k", STREAM, fields.type, fields.data) };
    expect(Result.isSuccess(decodeTelemetryEntry(STREAM, signed, { hmacKey: "k" }))).toBe(true);
    const forged = decodeTelemetryEntry(STREAM, { ...signed, sig: "0".repeat(64) }, { hmacKey: "k" });
    expect(Result.isFailure(forged) && forged.failure.code).toBe("bad_signature");
  });
});

describe("a scanner", () => {
  const scanned = (frames: ReturnType<TelemetryScanner["scan"]>) => frames?.map(canonical);

  test.prop([fc.array(fc.oneof(report.map((r) => ({ r, batch: false })), fc.array(report, { maxLength: 3 }).map((r) => ({ r, batch: true }))), { minLength: 2, maxLength: 8 })], { numRuns: 200 })(
    "reading entry after entry reads each as a fresh one does: nothing of one entry is left to the next",
    (items) => {
      const scanner = new TelemetryScanner();
      for (const { r, batch } of items) {
        const fields = batch ? msgpack({ ...SAMPLES.TelemetryBatch, messages: r, batch_size: (r as unknown[]).length }) : msgpack(r, "LayerHealthReport");
        expect(scanned(scanner.scan(fields.data, fields.type))).toEqual(scanned(new TelemetryScanner().scan(fields.data, fields.type)));
      }
    },
  );

  it("reads esper's own entries one after the other, each seed once per report though seeds repeat across reports", async () => {
    const windows = [0, 1, 2].map((step) => ({ layer: "L1", rows: { columns: ["mean", "alpha"], rows: Float32Array.from({ length: 2 * 50 }, (_, i) => step + i) }, step }));
    const entries = await published(windows, { batchSize: 50, batchWindowMs: 60_000 });
    const scanner = new TelemetryScanner();
    const frames = entries.flatMap((e) => scanner.scan(e.fields.data, e.fields.type) ?? []);
    expect(frames.map((f) => f.seeds.length)).toEqual([50, 50, 50]);
  });
});

describe("with fast paths off", () => {
  withFastPaths(false);

  it("every entry is read through the protocol's decodeEntry: the scanner is never asked", async () => {
    const rows = Float32Array.from({ length: 30 }, (_, i) => i / 3);
    P.setFastPaths(true);
    const entries = await published([0, 1, 2].map((step) => ({ layer: "L1", rows: { columns: ["mean", "alpha", "drift"], rows }, step })), { batchSize: 20, batchWindowMs: 60_000 });
    P.setFastPaths(false);
    const scanner = new TelemetryScanner();
    const scan = vi.spyOn(scanner, "scan");
    for (const entry of entries) expectSameContent(decodeTelemetryEntry(STREAM, entry.fields, {}, scanner), slowDecode(STREAM, entry.fields));
    expect(scan).not.toHaveBeenCalled();
    expect(entries.length).toBeGreaterThan(1);
  });
});
