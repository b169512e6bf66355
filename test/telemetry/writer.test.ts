import { fc, test } from "@fast-check/vitest";
import { Clock, Effect, Exit, Result, Scope } from "effect";
import { TestClock } from "effect/testing";
import { describe, expect, it } from "vitest";
import type { Entry } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import * as P from "../../src/protocol/index.ts";
import { makeTelemetryPublisher, type TelemetryPublisherConfig } from "../../src/telemetry/publisher.ts";
import type { SeedRecords, WindowInfo } from "../../src/telemetry/records.ts";

/**
 * The telemetry writer's fast path (protocol/fast/telemetry-*.ts: bytes written by hand) must
 * write what the general path writes (the protocol's builders, encoded as encodeEntry encodes):
 * from the same windows, the same entries, each decoding through the Schema (decodeEntry) to the
 * same messages. Only message ids differ (fresh each), and the sign of a zero: msgpackr writes
 * -0 as the integer 0, the fast writer keeps it.
 */

const NAMES_OF = P.streams("t");
const STREAM = NAMES_OF.telemetry("L1");
const T0 = 1_700_000_000_250;

interface Window {
  readonly layer: string;
  readonly info: WindowInfo;
  readonly records: SeedRecords;
}

/** The entries a publisher writes on a MemoryBus from `windows`, with fast paths `on`, at T0 on a TestClock. */
const publish = async (on: boolean, windows: readonly Window[], config: TelemetryPublisherConfig = {}): Promise<Entry[]> => {
  const before = P.setFastPaths(on);
  const bus = new MemoryBus();
  const scope = await Effect.runPromise(Scope.make());
  try {
    const clock = await Effect.runPromise(Scope.provide(scope)(TestClock.make({ warningDelay: "1 hour" })));
    await Effect.runPromise(clock.setTime(T0));
    const make = makeTelemetryPublisher(bus, { namespace: "t", batchWindowMs: 60_000, ...config });
    const publisher = await Effect.runPromise(Scope.provide(scope)(Effect.provideService(make, Clock.Clock, clock)));
    for (const w of windows) publisher.publishWindow(w.layer, w.info, w.records);
    await Effect.runPromise(publisher.flush);
    const layers = [...new Set(windows.map((w) => w.layer))];
    const streams = [...layers.map((l) => NAMES_OF.telemetry(l)), ...layers.map((l) => NAMES_OF.layerKey("claim", l))];
    return (await Promise.all(streams.map((s) => Effect.runPromise(bus.range(s))))).flat();
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
    P.setFastPaths(before);
  }
};

/** A decoded message as the two paths must agree on it: without message ids, -0 read as 0. */
const comparable = (u: unknown, key?: string): unknown => {
  if (Object.is(u, -0)) return 0;
  if (Array.isArray(u)) return u.map((v) => comparable(v));
  if (typeof u !== "object" || u === null) return u;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(u)) if (k !== "message_id" && !(key === "claim_check" && (k === "bytes" || k === "id"))) out[k] = comparable(v, k);
  return out;
};

/** Unsigned, so the stream named does not matter. */
const decoded = (entry: Entry) => {
  const m = P.decodeEntry(STREAM, entry.fields);
  if (Result.isFailure(m)) throw m.failure;
  return { type: entry.fields.type, enc: entry.fields.enc, message: comparable(m.success) };
};

const expectSameEntries = (fast: readonly Entry[], general: readonly Entry[]) => {
  expect(fast.length).toBe(general.length);
  fast.forEach((e, i) => expect(decoded(e)).toEqual(decoded(general[i]!)));
};

const NAMES = ["mean", "variance", "alpha", "a", "gradient_norm", "x".repeat(40), "é", "__proto__", "n8", "n9", "n10", "n11", "n12", "n13", "n14", "n15", "n16", "n17"];
const value = fc.oneof(
  { weight: 30, arbitrary: fc.float() },
  { weight: 10, arbitrary: fc.double() },
  { weight: 10, arbitrary: fc.constant(Number.NaN) },
  { weight: 10, arbitrary: fc.integer({ min: -70_000, max: 70_000 }) },
  fc.constantFrom(0, -0, Infinity, -Infinity, 2 ** 40, -(2 ** 40), 2 ** 53 - 1, 0.1),
);
const seedId = fc.oneof({ weight: 20, arbitrary: fc.nat({ max: 5_000 }) }, fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 40));
const metrics = fc.dictionary(fc.constantFrom(...NAMES), value, { maxKeys: 6 });

const rowsArb = fc
  .record({
    // Narrow rows, and rows around 16 columns, where a record's map header takes 3 bytes instead of 1.
    columns: fc.oneof(fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 5 }), fc.shuffledSubarray(NAMES, { minLength: 15, maxLength: 17 })),
    seeds: fc.nat({ max: 30 }),
    float32: fc.boolean(),
    ids: fc.boolean(),
  })
  .chain(({ columns, seeds, float32, ids }) =>
    fc.record({
      values: fc.array(value, { minLength: seeds * columns.length, maxLength: seeds * columns.length }),
      seedIds: ids ? fc.array(seedId, { minLength: seeds, maxLength: seeds }).map((a) => a as number[] | undefined) : fc.constant(undefined),
      columns: fc.constant(columns),
      float32: fc.constant(float32),
      seeds: fc.constant(seeds),
    }),
  )
  // Without columns a row holds no value: the seed count comes from seedIds alone.
  .filter(({ columns, seedIds, seeds }) => columns.length > 0 || seedIds !== undefined || seeds === 0)
  .map(({ columns, values, float32, seedIds }): SeedRecords => ({
    columns,
    rows: float32 ? Float32Array.from(values) : Float64Array.from(values),
    ...(seedIds === undefined ? {} : { seedIds }),
  }));
const mapArb = fc.array(fc.tuple(seedId, metrics), { maxLength: 20 }).map((pairs): SeedRecords => new Map(pairs));
const objectArb = fc.dictionary(seedId.map(String), metrics, { maxKeys: 20 }) as fc.Arbitrary<SeedRecords>;

const infoArb = fc.record(
  {
    window: fc.tuple(fc.integer({ min: -10, max: 1e6 }), fc.double({ noNaN: true, noDefaultInfinity: true })),
    step: fc.nat(),
    totalSeeds: fc.nat(),
    activeSeeds: fc.nat(),
    performanceSummary: fc.dictionary(fc.constantFrom("epoch", "loss", "lr"), fc.oneof(fc.double({ noNaN: true }), fc.nat())),
    anomalies: fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.nat()), { maxLength: 2 }),
  },
  { requiredKeys: ["window"] },
) as fc.Arbitrary<WindowInfo>;

const windowArb = fc.record({ layer: fc.constantFrom("L1", "L2"), info: infoArb, records: fc.oneof(rowsArb, mapArb, objectArb) });

describe("the fast writer and the general path", () => {
  test.prop([fc.array(windowArb, { minLength: 1, maxLength: 5 }), fc.constantFrom(1, 7, 1024), fc.constantFrom("none", "deflate")], { numRuns: 150 })(
    "write the same entries from the same windows: same types, cut alike, the same messages through the Schema",
    async (windows, batchSize, compression) => {
      const config = { batchSize, compression } as const;
      expectSameEntries(await publish(true, windows, config), await publish(false, windows, config));
    },
  );

  it("write the same claim-check reference and payload", async () => {
    const windows = [{ layer: "L1", info: { window: [0, 5], step: 5, performanceSummary: { epoch: 2 } }, records: { columns: ["mean", "alpha"], rows: Float32Array.from({ length: 400 }, (_, i) => i / 3) } }] as const;
    const config = { claimCheckThreshold: 500, maxEntryBytes: 1e9 };
    const [fast, general] = [await publish(true, windows, config), await publish(false, windows, config)];
    expect(fast.map((e) => e.fields.type)).toEqual(["LayerHealthReport", "LayerHealthReport"]);
    expectSameEntries(fast, general);
  });
});

describe("the general path", () => {
  it("writes each entry as encodeEntry encodes the message it holds: data, type, enc and sig alike", async () => {
    const windows: Window[] = [0, 1, 2].map((w) => ({ layer: "L1", info: { window: [w, w + 1], step: w + 1 }, records: { columns: ["mean", "alpha"], rows: Float32Array.from({ length: 20 }, (_, i) => w + i / 7) } }));
    const entries = [...(await publish(false, windows, { hmacKey: "k" })), ...(await publish(false, windows.slice(0, 1), { hmacKey: "k" }))];
    expect(entries.map((e) => e.fields.type)).toEqual(["TelemetryBatch", "LayerHealthReport"]);
    for (const entry of entries) {
      const m = P.decodeEntry(STREAM, entry.fields, { hmacKey: "k" });
      if (Result.isFailure(m)) throw m.failure;
      const { data, ...rest } = P.encodeEntry(m.success, { stream: STREAM, codec: "msgpack", hmacKey: "k" });
      expect({ ...entry.fields, data: Buffer.from(entry.fields.data) }).toEqual({ ...rest, data: Buffer.from(data) });
    }
  });

  it("is not what writes with fast paths on: other bytes for the same message (values as float32)", async () => {
    const windows: Window[] = [{ layer: "L1", info: { window: [0, 1] }, records: { columns: ["mean"], rows: Float32Array.from([0.5, 1.25, 2.75]) } }];
    const [entry] = await publish(true, windows);
    const m = P.decodeEntry(STREAM, entry!.fields);
    if (Result.isFailure(m)) throw m.failure;
    expect(Buffer.from(entry!.fields.data).equals(Buffer.from(P.encodeEntry(m.success, { stream: STREAM, codec: "msgpack" }).data))).toBe(false);
  });
});
