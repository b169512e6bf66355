import { fc, test } from "@fast-check/vitest";
import { Result } from "effect";
import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import type { EntryFields } from "../../src/bus/bus.ts";
import * as P from "../../src/protocol/index.ts";
import { ALL_SAMPLES, SAMPLES } from "./samples.ts";

const S = P.streams("morphogenetic");
const CONTROL = S.control("layer_1");
const KEY = "deployment-secret";
const utf8 = (s: string) => new TextEncoder().encode(s);

const message = (r: Result.Result<P.Message, P.ProtocolError>): P.Message => {
  if (Result.isFailure(r)) throw new Error(`expected a message, got ${r.failure.code}: ${r.failure.message}`);
  return r.success;
};
const failure = (r: Result.Result<P.Message, P.ProtocolError>): P.ProtocolError => {
  if (Result.isSuccess(r)) throw new Error(`expected a ProtocolError, got ${r.success.message_type}`);
  return r.failure;
};

describe("every message type round-trips through every codec", () => {
  const cases = ALL_SAMPLES.flatMap((m) => P.CODECS.map((codec) => [m.message_type, codec, m] as const));
  it.each(cases)("%s via %s", (_type, codec, m) => {
    const fields = P.encodeEntry(m, { stream: CONTROL, codec });
    expect(fields.type).toBe(m.message_type);
    expect(fields.enc).toBe(codec === "reference" ? undefined : codec);
    expect(message(P.decodeEntry(CONTROL, fields))).toEqual(m);
  });

  it("covers docs/protocol.md's 16 types and esper's ResumeCommand", () => {
    expect(new Set(ALL_SAMPLES.map((m) => m.message_type))).toEqual(new Set(P.MESSAGE_TYPES));
    expect(P.MESSAGE_TYPES).toHaveLength(17);
  });
});

describe("reference-format entries (written by the Python implementation)", () => {
  // Shaped like json.dumps of the reference dataclass: null optionals, lower-case enums, a lower-case state.
  const python = `{"message_type": "LifecycleTransitionCommand", "message_id": "6f1c2a9e-0b7d-4c1e-9f3a-2d5b8e7c4a10",
    "timestamp": 1700000000.123, "source": "tamiyo-py", "version": "1.0", "correlation_id": null, "metadata": null,
    "layer_id": "layer_1", "seed_id": 7, "target_state": "germinated", "parameters": {}, "priority": "high",
    "timeout_ms": 5000, "force": false, "reason": "warm start"}`;
  const expected = {
    message_type: "LifecycleTransitionCommand",
    message_id: "6f1c2a9e-0b7d-4c1e-9f3a-2d5b8e7c4a10",
    timestamp: 1700000000.123,
    source: "tamiyo-py",
    version: "1.0",
    layer_id: "layer_1",
    seed_id: 7,
    target_state: "GERMINATED",
    parameters: {},
    priority: "high",
    timeout_ms: 5000,
    force: false,
    reason: "warm start",
  };

  it("decodes plain JSON without enc", () => {
    expect(message(P.decodeEntry(CONTROL, { type: "LifecycleTransitionCommand", data: utf8(python) }))).toEqual(expected);
  });

  it("decodes zlib-compressed JSON without enc", () => {
    const data = deflateSync(utf8(python));
    expect(message(P.decodeEntry(CONTROL, { type: "LifecycleTransitionCommand", data }))).toEqual(expected);
  });

  it("decodes fields delivered as bytes, as a binary Redis client returns them", () => {
    const fields = { type: Buffer.from("LifecycleTransitionCommand"), data: Buffer.from(python) };
    expect(message(P.decodeEntry(CONTROL, fields))).toEqual(expected);
  });
});

describe("too_large", () => {
  it("is checked on the raw bytes before decoding: oversized garbage is too_large, not invalid_message", () => {
    const garbage = new Uint8Array(P.DEFAULT_MAX_MESSAGE_BYTES + 1).fill(0xc1);
    const error = failure(P.decodeEntry(CONTROL, { type: "LifecycleTransitionCommand", enc: "msgpack", data: garbage }));
    expect(error.code).toBe("too_large");
    expect(error.partial).toEqual({ message_type: "LifecycleTransitionCommand" });
  });

  it("the same garbage one byte shorter gets through to decoding (and fails there)", () => {
    const garbage = new Uint8Array(P.DEFAULT_MAX_MESSAGE_BYTES).fill(0xc1);
    expect(failure(P.decodeEntry(CONTROL, { type: "LifecycleTransitionCommand", enc: "msgpack", data: garbage })).code).toBe("invalid_message");
  });

  it("honours maxBytes", () => {
    const fields = P.encodeEntry(SAMPLES.Heartbeat, { stream: S.coordination });
    expect(failure(P.decodeEntry(S.coordination, fields, { maxBytes: fields.data.byteLength - 1 })).code).toBe("too_large");
    expect(message(P.decodeEntry(S.coordination, fields, { maxBytes: fields.data.byteLength }))).toEqual(SAMPLES.Heartbeat);
  });

  it("comes before the signature check", () => {
    const data = new Uint8Array(P.DEFAULT_MAX_MESSAGE_BYTES + 1);
    expect(failure(P.decodeEntry(CONTROL, { type: "BatchCommand", data }, { hmacKey: KEY })).code).toBe("too_large");
  });

  it("covers data that inflates past maxInflatedBytes", () => {
    const data = deflateSync(utf8(`{"pad": "${"x".repeat(2_000_000)}"}`));
    expect(data.byteLength).toBeLessThan(P.DEFAULT_MAX_MESSAGE_BYTES);
    expect(failure(P.decodeEntry(CONTROL, { type: "Heartbeat", enc: "json+deflate", data }, { maxInflatedBytes: 1_000_000 })).code).toBe("too_large");
  });
});

describe("bad_signature", () => {
  const signed = P.encodeEntry(SAMPLES.LifecycleTransitionCommand, { stream: CONTROL, hmacKey: KEY });

  it("a signed entry verifies", () => {
    expect(signed.sig).toMatch(/^[0-9a-f]{64}$/);
    expect(message(P.decodeEntry(CONTROL, signed, { hmacKey: KEY }))).toEqual(SAMPLES.LifecycleTransitionCommand);
  });

  it("the signature is the hex HMAC-SHA256 of stream, type and data joined by newlines", async () => {
    const { createHmac } = await import("node:crypto");
    const expected = createHmac("sha256", KEY)
      .update(Buffer.concat([Buffer.from(`${CONTROL}\nLifecycleTransitionCommand\n`), Buffer.from(signed.data)]))
      .digest("hex");
    expect(signed.sig).toBe(expected);
  });

  it("rejects a forged sig", () => {
    const forged = { ...signed, sig: P.signEntry("attacker-key", CONTROL, signed.type, signed.data) };
    expect(failure(P.decodeEntry(CONTROL, forged, { hmacKey: KEY })).code).toBe("bad_signature");
  });

  it("rejects a sig that is not hex", () => {
    expect(failure(P.decodeEntry(CONTROL, { ...signed, sig: "z".repeat(64) }, { hmacKey: KEY })).code).toBe("bad_signature");
  });

  it("rejects data changed after signing", () => {
    const tampered = { ...signed, data: P.encodeBody({ ...SAMPLES.LifecycleTransitionCommand, force: false }, "msgpack") };
    expect(failure(P.decodeEntry(CONTROL, tampered, { hmacKey: KEY })).code).toBe("bad_signature");
  });

  it("rejects an entry replayed onto another layer's stream", () => {
    expect(failure(P.decodeEntry(S.control("layer_2"), signed, { hmacKey: KEY })).code).toBe("bad_signature");
  });

  it("rejects a missing sig on a control stream once the deployment has a key", () => {
    const { sig: _, ...unsigned } = signed;
    expect(failure(P.decodeEntry(CONTROL, unsigned as EntryFields, { hmacKey: KEY })).code).toBe("bad_signature");
    expect(failure(P.decodeEntry(S.controlAll, unsigned as EntryFields, { hmacKey: KEY })).code).toBe("bad_signature");
  });

  it("accepts a missing sig outside control streams unless required", () => {
    const fields = P.encodeEntry(SAMPLES.SeedMetricsSnapshot, { stream: S.telemetry("layer_1") });
    expect(message(P.decodeEntry(S.telemetry("layer_1"), fields, { hmacKey: KEY }))).toEqual(SAMPLES.SeedMetricsSnapshot);
    expect(failure(P.decodeEntry(S.telemetry("layer_1"), fields, { hmacKey: KEY, requireSig: true })).code).toBe("bad_signature");
  });

  it("ignores sig when the deployment has no key", () => {
    expect(message(P.decodeEntry(CONTROL, { ...signed, sig: "forged" }))).toEqual(SAMPLES.LifecycleTransitionCommand);
  });
});

describe("invalid_message", () => {
  const withData = (data: Uint8Array | string, type = "Heartbeat", enc?: string) =>
    P.decodeEntry(CONTROL, { type, data, ...(enc === undefined ? {} : { enc }) });

  it.each([
    ["garbage bytes as msgpack", Uint8Array.from([0xc1, 0xff, 0x00]), "msgpack"],
    ["garbage bytes as reference JSON", Uint8Array.from([0xff, 0xfe, 0x00]), undefined],
    ["msgpack's never-used byte 0xC1", Uint8Array.from([0xc1]), "msgpack"],
    ["a list instead of a map", P.encodeBody([1, 2, 3], "msgpack"), "msgpack"],
    ["a bare string", utf8('"hello"'), "json"],
    ["an unknown enc", P.encodeBody(SAMPLES.Heartbeat, "msgpack"), "protobuf"],
  ])("%s", (_name, data, enc) => {
    expect(failure(withData(data, "Heartbeat", enc)).code).toBe("invalid_message");
  });

  it("wrong schema, with attribution for the answer", () => {
    const bad = { ...SAMPLES.LifecycleTransitionCommand, timeout_ms: "soon" };
    const error = failure(withData(P.encodeBody(bad, "msgpack"), "LifecycleTransitionCommand", "msgpack"));
    expect(error.code).toBe("invalid_message");
    expect(error.message).toMatch(/timeout_ms/);
    expect(error.partial).toEqual({
      message_type: "LifecycleTransitionCommand",
      message_id: SAMPLES.LifecycleTransitionCommand.message_id,
      layer_id: "layer_1",
      seed_id: 3,
    });
  });

  it("unknown type", () => {
    const m = { ...SAMPLES.Heartbeat, message_type: "Teleport" };
    expect(failure(withData(P.encodeBody(m, "msgpack"), "Teleport", "msgpack")).message).toMatch(/unknown message_type/);
  });

  it("type field different from message_type", () => {
    const error = failure(withData(P.encodeBody(SAMPLES.Heartbeat, "msgpack"), "LifecycleTransitionCommand", "msgpack"));
    expect(error.message).toMatch(/differs from message_type/);
  });

  it("wrong version", () => {
    const m = { ...SAMPLES.Heartbeat, version: "2.0" };
    expect(failure(withData(P.encodeBody(m, "msgpack"), "Heartbeat", "msgpack")).message).toMatch(/version "2.0"/);
  });

  it("no type field", () => {
    const error = failure(P.decodeEntry(CONTROL, { data: P.encodeBody(SAMPLES.Heartbeat, "msgpack"), enc: "msgpack" }));
    expect(error.message).toMatch(/no type field/);
  });

  it("no data field", () => {
    expect(failure(P.decodeEntry(CONTROL, { type: "Heartbeat" })).message).toMatch(/no data field/);
  });

  it("keeps the error text short when the bad value is huge", () => {
    const m = { ...SAMPLES.Heartbeat, status: "x".repeat(500_000) };
    expect(failure(withData(P.encodeBody(m, "msgpack"), "Heartbeat", "msgpack")).message.length).toBeLessThan(1_200);
  });
});

describe("decodeEntry never throws", () => {
  const CODES = new Set<string>(P.PROTOCOL_ERROR_CODES);
  const answers = (r: Result.Result<P.Message, P.ProtocolError>): boolean =>
    Result.isSuccess(r)
      ? P.isMessageType(r.success.message_type)
      : r.failure instanceof P.ProtocolError && CODES.has(r.failure.code) && r.failure.message.length > 0;

  const encs = fc.constantFrom(undefined, "msgpack", "json", "msgpack+deflate", "json+deflate", "", "MSGPACK", "zstd");
  const types = fc.oneof(fc.constantFrom(...P.MESSAGE_TYPES), fc.string());

  test.prop([fc.uint8Array({ maxLength: 512 }), encs, types], { numRuns: 2_000 })("on random bytes", (data, enc, type) => {
    expect(answers(P.decodeEntry(CONTROL, { type, data, ...(enc === undefined ? {} : { enc }) }))).toBe(true);
  });

  test.prop([fc.uint8Array({ maxLength: 256 }), types], { numRuns: 1_000 })("on random bytes behind a zlib header", (tail, type) => {
    expect(answers(P.decodeEntry(CONTROL, { type, data: Uint8Array.from([0x78, 0x9c, ...tail]) }))).toBe(true);
  });

  const anyFields = fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.uint8Array(), fc.anything() as fc.Arbitrary<never>));
  test.prop([anyFields], { numRuns: 1_000 })("on random entry fields of any type", (fields) => {
    expect(answers(P.decodeEntry(CONTROL, fields, { hmacKey: KEY }))).toBe(true);
  });

  const codecs = fc.constantFrom(...P.CODECS);
  test.prop([fc.object({ maxDepth: 3 }), types, codecs], { numRuns: 1_000 })("on random maps", (map, type, codec) => {
    const data = P.encodeBody({ message_type: type, ...map }, codec);
    const enc = codec === "reference" ? {} : { enc: codec };
    expect(answers(P.decodeEntry(CONTROL, { type, data, ...enc }))).toBe(true);
  });

  // A valid message with one field replaced by anything: decoding either refuses it or yields a
  // message that survives its own round trip unchanged.
  // fast-check builds strings char by char; repeating a short one gives huge strings cheaply.
  const hugeString = fc.tuple(fc.string({ minLength: 1, maxLength: 4 }), fc.integer({ min: 50_000, max: 300_000 })).map(([s, n]) => s.repeat(n));
  const sample = fc.constantFrom(...ALL_SAMPLES);
  const mutated = sample.chain((m) =>
    fc.record({ m: fc.constant(m), key: fc.constantFrom(...Object.keys(m)), value: fc.oneof(fc.anything(), hugeString) }),
  );
  test.prop([mutated, codecs], { numRuns: 1_000 })("on valid messages with a field of the wrong type or a huge string", ({ m, key, value }, codec) => {
    const data = P.encodeBody({ ...m, [key]: value }, codec);
    const r = P.decodeEntry(CONTROL, { type: m.message_type, data, ...(codec === "reference" ? {} : { enc: codec }) });
    expect(answers(r)).toBe(true);
    if (Result.isSuccess(r)) {
      const again = P.encodeEntry(r.success, { stream: CONTROL, codec: "msgpack" });
      expect(message(P.decodeEntry(CONTROL, again, { maxBytes: Number.POSITIVE_INFINITY }))).toEqual(r.success);
    } else {
      expect(r.failure.message.length).toBeLessThan(1_200);
    }
  });
});
