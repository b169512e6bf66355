import { fc, test } from "@fast-check/vitest";
import { Result, Schema } from "effect";
import { describe, expect, it } from "vitest";
import { SEED_STATES } from "../../machines/lifecycle.ts";
import { decodeLifecycleTransitionCommand } from "../../src/protocol/fast/command-decoder.ts";
import * as P from "../../src/protocol/index.ts";
import { SAMPLES } from "./samples.ts";
import { anyMap, field, strip } from "./arbitraries.ts";

/**
 * The fast LifecycleTransitionCommand decoder must agree with the Schema it stands in for: same
 * verdict, same decoded value (defaults included), on plain input that is mostly right and
 * sometimes wrong in each field. decodeMessage must agree with the Schema on all of it too.
 */


const lifecycleTransitionCommand = fc
  .record({
    message_type: fc.oneof({ weight: 20, arbitrary: fc.constant("LifecycleTransitionCommand") }, fc.constantFrom("BlueprintUpdateCommand", 7)),
    message_id: field(fc.uuid(), ["", "x".repeat(129), 42]),
    timestamp: field(fc.double({ min: 0, max: 2e9, noNaN: true }), [Number.NaN, Infinity, "now"]),
    source: field(fc.string({ maxLength: 10 }), [5, {}]),
    version: field(fc.constantFrom("1.0", "1", "1.2"), ["2.0", "1.0.0", 1, "1."]),
    correlation_id: field(fc.string({ maxLength: 10 }), [5]),
    metadata: field(anyMap, [[1], "meta"]),
    layer_id: field(fc.constantFrom("layer_1", "L-2", "a".repeat(64)), ["a b", "", "a".repeat(65), 3]),
    seed_id: field(fc.nat(), [-1, 1.5, "3", 2 ** 60, Number.NaN]),
    target_state: field(fc.constantFrom(...SEED_STATES, "training", "Grafting", "germinated"), ["BOGUS", 3, ""]),
    parameters: field(anyMap, [[], 1, "p"]),
    priority: field(fc.constantFrom("low", "normal", "high", "critical"), ["NORMAL", "urgent", 2]),
    timeout_ms: field(fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e7, noNaN: true })), [-1, Infinity, Number.NaN, "5000"]),
    force: field(fc.boolean(), [0, "true"]),
    reason: field(fc.string({ maxLength: 10 }), [1, {}]),
  })
  .map(strip);

const bySchema = Schema.decodeUnknownResult(P.MESSAGE_SCHEMAS.LifecycleTransitionCommand as Schema.Decoder<unknown>);

const agrees = (input: unknown) => {
  const schema = bySchema(input);
  const fast = decodeLifecycleTransitionCommand(input);
  expect({ accepted: fast !== undefined }).toEqual({ accepted: Result.isSuccess(schema) });
  if (fast !== undefined && Result.isSuccess(schema)) {
    // toEqual: the fast path keeps a null-prototype map as it came, the Schema copies it.
    expect(fast).toEqual(schema.success);
    // Same keys in the same order, so a re-encoded command has the same bytes.
    expect(Object.keys(fast)).toEqual(Object.keys(schema.success as object));
  }
  const viaDecodeMessage = P.decodeMessage(input);
  expect(Result.isSuccess(viaDecodeMessage)).toBe(Result.isSuccess(schema));
  if (Result.isSuccess(viaDecodeMessage) && Result.isSuccess(schema)) expect(viaDecodeMessage.success).toEqual(schema.success);
};

describe("the fast LifecycleTransitionCommand decoder agrees with the Schema", () => {
  test.prop([lifecycleTransitionCommand], { numRuns: 3_000 })("random, mostly valid input", (input) => agrees(input));

  it("the generator produces both verdicts (else the agreement would prove little)", () => {
    const verdicts = fc.sample(lifecycleTransitionCommand, 500).map((u) => decodeLifecycleTransitionCommand(u) !== undefined);
    expect(verdicts.filter(Boolean).length).toBeGreaterThan(10);
    expect(verdicts.filter((v) => !v).length).toBeGreaterThan(10);
  });

  it("applies docs/protocol.md's defaults to a minimal command", () => {
    const minimal = { message_type: "LifecycleTransitionCommand", message_id: "m-1", timestamp: 1, source: "s", version: "1.0", layer_id: "layer_1", target_state: "training", correlation_id: null, metadata: null };
    const decoded = decodeLifecycleTransitionCommand(minimal);
    expect(decoded).toStrictEqual({
      message_type: "LifecycleTransitionCommand",
      message_id: "m-1",
      timestamp: 1,
      source: "s",
      version: "1.0",
      layer_id: "layer_1",
      seed_id: null,
      target_state: "TRAINING",
      parameters: {},
      priority: "normal",
      timeout_ms: 5_000,
      force: false,
      reason: "",
    });
    agrees(minimal);
  });

  it("the sample decodes on the fast path, extra keys dropped", () => {
    agrees(SAMPLES.LifecycleTransitionCommand);
    agrees({ ...SAMPLES.LifecycleTransitionCommand, extra: 1 });
    expect(decodeLifecycleTransitionCommand({ ...SAMPLES.LifecycleTransitionCommand, extra: 1 })).not.toHaveProperty("extra");
  });

  it("leaves unusual input to the Schema (a msgpack bin where a map belongs), and decodeMessage still agrees", () => {
    const odd = { ...SAMPLES.LifecycleTransitionCommand, parameters: new Uint8Array([1, 2]) };
    expect(decodeLifecycleTransitionCommand(odd)).toBeUndefined();
    expect(Result.isSuccess(P.decodeMessage(odd))).toBe(Result.isSuccess(bySchema(odd)));
  });

  it("decodeMessage's error text for an invalid command still comes from the Schema", () => {
    const bad = { ...SAMPLES.LifecycleTransitionCommand, target_state: "BOGUS" };
    const r = P.decodeMessage(bad);
    expect(Result.isFailure(r)).toBe(true);
    if (Result.isFailure(r)) expect(r.failure.message).toContain("LifecycleTransitionCommand does not match its schema");
  });
});
