import { fc, test } from "@fast-check/vitest";
import { Result, Schema } from "effect";
import { describe, expect, it } from "vitest";
import { RESULT_CODES, SEED_STATES } from "../../machines/lifecycle.ts";
import { CODECS } from "../../src/protocol/codec.ts";
import { decodeCommandResult, decodeStateTransitionEvent } from "../../src/protocol/fast/event-decoders.ts";
import * as P from "../../src/protocol/index.ts";
import { SAMPLES } from "./samples.ts";
import { anyMap, field, strip } from "./arbitraries.ts";

/**
 * The fast CommandResult and StateTransitionEvent decoders must agree with the Schemas they stand
 * in for: same verdict, same decoded value (defaults and the derived `code` included), on plain
 * input that is mostly right and sometimes wrong in each field. decodeMessage must agree with the
 * Schemas on all of it too.
 */

const nonNegative = fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e7, noNaN: true }));

const common = (type: string) => ({
  message_type: fc.oneof({ weight: 20, arbitrary: fc.constant(type) }, fc.constantFrom("LifecycleTransitionCommand", "CommandResult", "StateTransitionEvent", 7)),
  message_id: field(fc.oneof(fc.uuid(), fc.constant("x".repeat(128))), ["", "x".repeat(129), 42], 30),
  timestamp: field(fc.double({ min: 0, max: 2e9, noNaN: true }), [Number.NaN, Infinity, "now"], 30),
  source: field(fc.string({ maxLength: 10 }), [5, {}], 30),
  version: field(fc.constantFrom("1.0", "1", "1.2"), ["2.0", "1.0.0", 1, "1."], 30),
  metadata: field(anyMap, [[1], "meta"], 30),
});

const commandResult = fc
  .record({
    ...common("CommandResult"),
    // Required here, and a message id: it names the command answered. Absent and null are wrong.
    correlation_id: field(fc.oneof(fc.uuid(), fc.constant("c".repeat(128))), ["", "c".repeat(129), 5], 30),
    layer_id: field(fc.constantFrom("layer_1", "L-2", "a".repeat(64)), ["a b", "", "a".repeat(65), 3], 30),
    seed_id: field(fc.nat(), [-1, 1.5, "3", 2 ** 60, Number.NaN], 30),
    success: field(fc.boolean(), [0, "true"], 30),
    error: field(fc.string({ maxLength: 10 }), [5, {}], 30),
    details: field(anyMap, [[], 1, "d"], 30),
    execution_time_ms: field(nonNegative, [-1, Infinity, Number.NaN, "0.4"], 30),
    code: field(fc.constantFrom(...RESULT_CODES), ["OK", "Guard_Failed", "bogus", 1], 30),
  })
  .map(strip);

const stateTransitionEvent = fc
  .record({
    ...common("StateTransitionEvent"),
    // The common optional string: unlike CommandResult's, no message id length limit.
    correlation_id: field(fc.oneof(fc.string({ maxLength: 10 }), fc.constant("c".repeat(200))), [5, {}], 30),
    layer_id: field(fc.constantFrom("layer_1", "L-2", "a".repeat(64)), ["a b", "", "a".repeat(65), 3], 30),
    // Not nullable, unlike CommandResult's: absent and null are wrong.
    seed_id: field(fc.nat(), [-1, 1.5, "3", 2 ** 60, Number.NaN], 30),
    // Case-insensitive; toUpperCase also folds "ı" to "I" and "ﬁ" to "FI", and both sides must agree on that.
    from_state: field(fc.constantFrom(...SEED_STATES, "training", "Grafting", "traınıng", "ﬁne_tuning"), ["BOGUS", 3, ""], 30),
    to_state: field(fc.constantFrom(...SEED_STATES, "culled", "Fossilized"), ["germinate", 3, ""], 30),
    reason: field(fc.string({ maxLength: 10 }), [1, {}], 30),
    metrics_snapshot: field(anyMap, [[], 1, "m"], 30),
    transition_duration_ms: field(nonNegative, [-1, Infinity, Number.NaN, "1.5"], 30),
    triggered_by: field(fc.constantFrom("user", "system", "policy"), ["USER", "operator", 1], 30),
    success: field(fc.boolean(), [0, "true"], 30),
  })
  .map(strip);

const schemaOf = (type: "CommandResult" | "StateTransitionEvent") =>
  Schema.decodeUnknownResult(P.MESSAGE_SCHEMAS[type] as Schema.Decoder<unknown>);
const cases = [
  { type: "CommandResult", fast: decodeCommandResult as (u: unknown) => unknown, schema: schemaOf("CommandResult"), generator: commandResult },
  { type: "StateTransitionEvent", fast: decodeStateTransitionEvent as (u: unknown) => unknown, schema: schemaOf("StateTransitionEvent"), generator: stateTransitionEvent },
] as const;
type Case = (typeof cases)[number];

const agrees = ({ fast: decodeFast, schema: bySchema }: Case, input: unknown) => {
  const schema = bySchema(input);
  const fast = decodeFast(input);
  expect({ accepted: fast !== undefined }).toEqual({ accepted: Result.isSuccess(schema) });
  if (fast !== undefined && Result.isSuccess(schema)) {
    // toEqual: the fast path keeps a null-prototype map as it came, the Schema copies it.
    expect(fast).toEqual(schema.success);
    // Same keys in the same order, so a re-encoded event has the same bytes.
    expect(Object.keys(fast as object)).toEqual(Object.keys(schema.success as object));
  }
  const viaDecodeMessage = P.decodeMessage(input);
  expect(Result.isSuccess(viaDecodeMessage)).toBe(Result.isSuccess(schema));
  if (Result.isSuccess(viaDecodeMessage) && Result.isSuccess(schema)) expect(viaDecodeMessage.success).toEqual(schema.success);
};

describe.each(cases)("the fast $type decoder agrees with the Schema", (c) => {
  test.prop([c.generator], { numRuns: 3_000 })("random, mostly valid input", (input) => agrees(c, input));

  it("the generator produces both verdicts (else the agreement would prove little)", () => {
    const verdicts = fc.sample(c.generator, 500).map((u) => c.fast(u) !== undefined);
    expect(verdicts.filter(Boolean).length).toBeGreaterThan(10);
    expect(verdicts.filter((v) => !v).length).toBeGreaterThan(10);
  });

  it("the sample decodes on the fast path, extra keys dropped", () => {
    agrees(c, SAMPLES[c.type]);
    agrees(c, { ...SAMPLES[c.type], extra: 1 });
    expect(c.fast(SAMPLES[c.type])).toStrictEqual(SAMPLES[c.type]);
    expect(c.fast({ ...SAMPLES[c.type], extra: 1 })).not.toHaveProperty("extra");
  });

  it.each(CODECS)("the sample round-trips through %s on the fast path", (codec) => {
    const parsed = P.decodeBody(P.encodeBody(SAMPLES[c.type], codec), codec === "reference" ? undefined : codec);
    expect(c.fast(parsed)).toEqual(SAMPLES[c.type]);
    const decoded = P.decodeMessage(parsed, c.type);
    expect(Result.isSuccess(decoded) && decoded.success).toEqual(SAMPLES[c.type]);
    agrees(c, parsed);
  });

  it("leaves unusual input to the Schema (a msgpack bin or a Map where a map belongs), and decodeMessage still agrees", () => {
    const mapField = c.type === "CommandResult" ? "details" : "metrics_snapshot";
    for (const odd of [new Uint8Array([1, 2]), new Map([["a", 1]])]) {
      const input = { ...SAMPLES[c.type], [mapField]: odd };
      expect(c.fast(input)).toBeUndefined();
      expect(Result.isSuccess(P.decodeMessage(input))).toBe(Result.isSuccess(c.schema(input)));
    }
  });
});

describe("defaults", () => {
  const head = { message_id: "m-1", timestamp: 1, source: "s", version: "1.0", metadata: null };

  it("a minimal CommandResult gets docs/protocol.md's defaults, and its code from success", () => {
    const minimal = { message_type: "CommandResult", ...head, correlation_id: "c-1", layer_id: "layer_1", success: true, execution_time_ms: 0 };
    expect(decodeCommandResult(minimal)).toStrictEqual({
      message_type: "CommandResult",
      message_id: "m-1",
      timestamp: 1,
      source: "s",
      version: "1.0",
      correlation_id: "c-1",
      layer_id: "layer_1",
      seed_id: null,
      success: true,
      error: null,
      details: {},
      execution_time_ms: 0,
      code: "ok",
    });
    agrees(cases[0], minimal);
    const failed = { ...minimal, success: false, code: null };
    expect(decodeCommandResult(failed)?.code).toBe("internal");
    agrees(cases[0], failed);
  });

  it("a minimal StateTransitionEvent gets docs/protocol.md's defaults, its states upper-cased", () => {
    const minimal = {
      message_type: "StateTransitionEvent",
      ...head,
      correlation_id: null,
      layer_id: "layer_1",
      seed_id: 0,
      from_state: "dormant",
      to_state: "Germinated",
      transition_duration_ms: 0,
      triggered_by: "system",
      success: true,
    };
    expect(decodeStateTransitionEvent(minimal)).toStrictEqual({
      message_type: "StateTransitionEvent",
      message_id: "m-1",
      timestamp: 1,
      source: "s",
      version: "1.0",
      layer_id: "layer_1",
      seed_id: 0,
      from_state: "DORMANT",
      to_state: "GERMINATED",
      reason: "",
      metrics_snapshot: {},
      transition_duration_ms: 0,
      triggered_by: "system",
      success: true,
    });
    agrees(cases[1], minimal);
  });
});

describe("decodeMessage's error text for an invalid event still comes from the Schema", () => {
  it.each([
    ["CommandResult", { ...SAMPLES.CommandResult, code: "OK" }],
    ["CommandResult", { ...SAMPLES.CommandResult, correlation_id: null }],
    ["StateTransitionEvent", { ...SAMPLES.StateTransitionEvent, seed_id: null }],
    ["StateTransitionEvent", { ...SAMPLES.StateTransitionEvent, triggered_by: "USER" }],
  ] as const)("%s %j", (type, bad) => {
    const r = P.decodeMessage(bad);
    expect(Result.isFailure(r)).toBe(true);
    if (Result.isFailure(r)) expect(r.failure.message).toContain(`${type} does not match its schema`);
  });
});
