import { fc, test } from "@fast-check/vitest";
import { Result, Schema } from "effect";
import { describe, expect, it } from "vitest";
import { SEED_STATES } from "../../machines/lifecycle.ts";
import * as P from "../../src/protocol/index.ts";
import { decodeTelemetry, type TelemetryType } from "../../src/protocol/telemetry-records.ts";
import { SAMPLES } from "./samples.ts";

/**
 * The hand-written telemetry decoders must agree with the Schemas they stand in for: same
 * verdict, same decoded value, on input that is mostly right and sometimes wrong in each field.
 */

const ABSENT = Symbol("absent");
/** Mostly a valid value; sometimes absent, null, or one of the wrong ones. */
const field = <T>(valid: fc.Arbitrary<T>, ...wrong: unknown[]) =>
  fc.oneof(
    { weight: 12, arbitrary: valid as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: fc.constant(ABSENT) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: wrong.length > 0 ? fc.constantFrom(...wrong) : fc.anything() },
  );
const strip = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== ABSENT));

const numberMap = fc.dictionary(fc.string({ maxLength: 8 }), fc.double());
const anyMap = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue());

const commonFields = (type: string) => ({
  message_type: fc.oneof({ weight: 20, arbitrary: fc.constant(type) }, fc.constantFrom("LayerHealthReport", "Heartbeat", 7)),
  message_id: field(fc.uuid(), "", "x".repeat(129), 42),
  timestamp: field(fc.double({ min: 0, max: 2e9, noNaN: true }), Number.NaN, Infinity, "now"),
  source: field(fc.string({ maxLength: 10 }), 5, {}),
  version: field(fc.constantFrom("1.0", "1", "1.2"), "2.0", "1.0.0", 1),
  correlation_id: field(fc.string({ maxLength: 10 }), 5),
  metadata: field(anyMap, [1], "meta"),
});

const seedMetricsSnapshot = fc
  .record({
    ...commonFields("SeedMetricsSnapshot"),
    layer_id: field(fc.constantFrom("layer_1", "L-2", "a".repeat(64)), "a b", "", "a".repeat(65), 3),
    seed_id: field(fc.nat(), -1, 1.5, "3", 2 ** 60),
    lifecycle_state: field(fc.constantFrom(...SEED_STATES, "training", "Grafting"), "BOGUS", 3),
    blueprint_id: field(fc.string({ maxLength: 8 }), 7),
    metrics: field(numberMap, { a: "x" }, { a: null }, [1], "m"),
    error_count: field(fc.nat(), -1, 0.5),
    warning_count: field(fc.nat(), -1, "2"),
    checkpoint_id: field(fc.string({ maxLength: 8 }), false),
    compute_stats: field(numberMap, { a: true }),
    grafting_info: field(anyMap, [], 1),
  })
  .map(strip);

const seedKey = fc.oneof({ weight: 10, arbitrary: fc.nat({ max: 500 }).map(String) }, fc.constantFrom("01", "-1", "a", ""));
const layerHealthReport = fc
  .record({
    ...commonFields("LayerHealthReport"),
    layer_id: field(fc.constantFrom("layer_1", "L-2"), "a.b", 3),
    total_seeds: field(fc.nat(), -3),
    active_seeds: field(fc.nat(), 1.5),
    health_metrics: field(fc.dictionary(seedKey, fc.oneof({ weight: 10, arbitrary: numberMap }, fc.constantFrom({ a: "x" }, [], 5))), [], 5),
    performance_summary: field(anyMap, [], 5),
    telemetry_window: field(fc.tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ noNaN: true, noDefaultInfinity: true })), [1], [1, 2, 3], [Number.NaN, 1], "w"),
    anomalies: field(fc.array(fc.jsonValue(), { maxLength: 3 }), "a", {}),
  })
  .map(strip);

const telemetryBatch = fc
  .record({
    ...commonFields("TelemetryBatch"),
    messages: field(
      fc.array(fc.oneof({ weight: 10, arbitrary: seedMetricsSnapshot }, { weight: 3, arbitrary: layerHealthReport }, fc.constant(SAMPLES.Heartbeat)), { maxLength: 6 }),
      "m",
      {},
    ),
    compression: field(fc.constantFrom("zlib", "none"), 1),
    batch_size: field(fc.nat(), -1),
  })
  .map(strip);

const agrees = (type: TelemetryType, input: unknown) => {
  const bySchema = Schema.decodeUnknownResult(P.MESSAGE_SCHEMAS[type] as Schema.Decoder<unknown>)(input);
  const byHand = decodeTelemetry(type, input);
  expect({ type, accepted: byHand.ok }).toEqual({ type, accepted: Result.isSuccess(bySchema) });
  if (byHand.ok && Result.isSuccess(bySchema)) expect(byHand.value).toEqual(bySchema.success);
};

describe("the hand decoders agree with the Schemas", () => {
  test.prop([seedMetricsSnapshot], { numRuns: 2_000 })("SeedMetricsSnapshot", (input) => agrees("SeedMetricsSnapshot", input));
  test.prop([layerHealthReport], { numRuns: 2_000 })("LayerHealthReport", (input) => agrees("LayerHealthReport", input));
  test.prop([telemetryBatch], { numRuns: 1_000 })("TelemetryBatch", (input) => agrees("TelemetryBatch", input));

  it("the generators produce both verdicts (else the agreement would prove little)", () => {
    const verdicts = fc.sample(seedMetricsSnapshot, 500).map((u) => decodeTelemetry("SeedMetricsSnapshot", u).ok);
    expect(verdicts.filter(Boolean).length).toBeGreaterThan(10);
    expect(verdicts.filter((v) => !v).length).toBeGreaterThan(10);
  });
});

describe("rejections say where", () => {
  const batch = (messages: unknown[]) => ({ ...SAMPLES.TelemetryBatch, messages });

  it("names the record and field", () => {
    const r = decodeTelemetry("TelemetryBatch", batch([SAMPLES.SeedMetricsSnapshot, { ...SAMPLES.SeedMetricsSnapshot, seed_id: -1 }]));
    expect(r).toEqual({ ok: false, rejection: { path: "messages[1].seed_id", expected: "a non-negative integer" } });
  });

  it("names the metric of a seed in health_metrics", () => {
    const r = decodeTelemetry("LayerHealthReport", { ...SAMPLES.LayerHealthReport, health_metrics: { "3": { mean: "high" } } });
    expect(r).toEqual({ ok: false, rejection: { path: "health_metrics.3.mean", expected: "a number" } });
  });

  it("does not let an invalid layer id through after a valid one (the layer id cache)", () => {
    expect(decodeTelemetry("SeedMetricsSnapshot", SAMPLES.SeedMetricsSnapshot).ok).toBe(true);
    expect(decodeTelemetry("SeedMetricsSnapshot", { ...SAMPLES.SeedMetricsSnapshot, layer_id: "layer 1" }).ok).toBe(false);
  });

  it("refuses a msgpack bin where a map belongs, which the Schema would read as a map", () => {
    expect(decodeTelemetry("SeedMetricsSnapshot", { ...SAMPLES.SeedMetricsSnapshot, metrics: new Uint8Array([1, 2]) }).ok).toBe(false);
  });
});

describe("speed", () => {
  // A regression guard, not the benchmark: Schema decoding costs ~15 µs a record, the hand path
  // well under 1 µs. The best of several runs ignores a busy machine.
  it("decodes a batch of 1000 snapshots in under 5 µs a record", () => {
    const records = Array.from({ length: 1_000 }, (_, i) => ({ ...SAMPLES.SeedMetricsSnapshot, seed_id: i, message_id: `m-${i}` }));
    const wire = P.encodeBody({ ...SAMPLES.TelemetryBatch, messages: records, batch_size: records.length }, "msgpack");
    const batch = P.decodeBody(wire, "msgpack");
    let best = Infinity;
    for (let run = 0; run < 30; run++) {
      const start = performance.now();
      const r = decodeTelemetry("TelemetryBatch", batch);
      best = Math.min(best, performance.now() - start);
      expect(r.ok).toBe(true);
    }
    expect(best).toBeLessThan(5);
  });
});
