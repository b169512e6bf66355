import { unpack as standaloneUnpack } from "msgpackr";
import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BodyError, CODECS, decodeBody, encodeBody, isZlib } from "../../src/protocol/codec.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const encOf = (codec: (typeof CODECS)[number]) => (codec === "reference" ? undefined : codec);

const bodyError = (f: () => unknown): BodyError => {
  try {
    f();
  } catch (e) {
    if (e instanceof BodyError) return e;
    throw e;
  }
  throw new Error("expected a BodyError");
};

describe("every codec round-trips a map", () => {
  const value = { a: 1, b: "two", c: [1.5, null, true], d: { nested: { x: -3 } }, e: "ünïcødé ✓", big: 2 ** 40 };
  it.each(CODECS)("%s", (codec) => {
    expect(decodeBody(encodeBody(value, codec), encOf(codec))).toEqual(value);
  });

  it.each(CODECS)("%s keeps NaN and the infinities (trainers produce them)", (codec) => {
    const metrics = { loss: Number.NaN, grad: Infinity, low: -Infinity, ok: 0.5 };
    expect(decodeBody(encodeBody({ metrics }, codec), encOf(codec))).toEqual({ metrics });
  });
});

describe("msgpack is plain msgpack for other-language readers", () => {
  it("writes a map, not msgpackr's record extension", () => {
    const bytes = encodeBody({ message_type: "Heartbeat", load: 0.5 }, "msgpack");
    const first = bytes[0]!;
    expect((first & 0xf0) === 0x80 || first === 0xde || first === 0xdf).toBe(true);
    expect(standaloneUnpack(bytes)).toEqual({ message_type: "Heartbeat", load: 0.5 });
  });

  it("writes undefined as nil", () => {
    expect(decodeBody(encodeBody({ a: undefined }, "msgpack"), "msgpack")).toEqual({ a: null });
  });

  it("reads a map as a plain object", () => {
    const decoded = decodeBody(encodeBody({ a: { b: 1 } }, "msgpack"), "msgpack") as { a: object };
    expect(Object.getPrototypeOf(decoded.a)).toBe(Object.prototype);
  });

  it("reads a 64-bit integer as a number when exact", () => {
    const uint64 = Uint8Array.from([0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(decodeBody(uint64, "msgpack")).toBe(2 ** 32);
  });
});

describe("reference format: no enc, UTF-8 JSON, zlib when it starts with 0x78 0x9C", () => {
  // What Python's json.dumps writes: spaces after separators, null for None, bare NaN.
  const python = '{"message_type": "Heartbeat", "correlation_id": null, "load": NaN, "name": "NaN in a string stays"}';

  it("reads plain JSON as Python writes it, NaN included", () => {
    expect(decodeBody(utf8(python), undefined)).toEqual({
      message_type: "Heartbeat",
      correlation_id: null,
      load: Number.NaN,
      name: "NaN in a string stays",
    });
  });

  it("reads zlib-compressed JSON", () => {
    const compressed = deflateSync(utf8(python));
    expect([compressed[0], compressed[1]]).toEqual([0x78, 0x9c]);
    expect(decodeBody(compressed, undefined)).toMatchObject({ message_type: "Heartbeat", correlation_id: null });
  });

  it("writes non-finite numbers as Python's bare tokens", () => {
    expect(new TextDecoder().decode(encodeBody({ a: Number.NaN, b: -Infinity, s: "NaN" }, "reference"))).toBe('{"a":NaN,"b":-Infinity,"s":"NaN"}');
  });
});

describe("isZlib", () => {
  it.each([
    [[0x78, 0x9c], true],
    [[0x78, 0x01], true],
    [[0x78, 0xda], true],
    [[0x78, 0x00], false],
    [[0x7b, 0x22], false], // '{"'
    [[0x78], false],
  ])("%j -> %s", (bytes, expected) => {
    expect(isZlib(Uint8Array.from(bytes))).toBe(expected);
  });
});

describe("bytes that cannot be read", () => {
  it("an inflate past the bound is too_large, not a crash (zlib bomb)", () => {
    const bomb = deflateSync(new Uint8Array(4 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(10_000);
    expect(bodyError(() => decodeBody(bomb, "json+deflate", 1024 * 1024)).reason).toBe("too_large");
  });

  it.each([
    ["unknown enc", utf8("{}"), "yaml"],
    ["invalid JSON", utf8("{nope"), "json"],
    ["invalid UTF-8", Uint8Array.from([0x7b, 0xff, 0x7d]), "json"],
    ["msgpack with an unknown extension", Uint8Array.from([0xd4, 0x05, 0x00]), "msgpack"],
    ["msgpack with trailing bytes", Uint8Array.from([0x01, 0x02]), "msgpack"],
    ["truncated msgpack", Uint8Array.from([0x82, 0xa1, 0x61]), "msgpack"],
    ["deflate that is not zlib", utf8("{}"), "msgpack+deflate"],
    ["a reference entry starting like zlib but corrupt", Uint8Array.from([0x78, 0x9c, 1, 2, 3]), undefined],
  ])("%s is undecodable", (_name, bytes, enc) => {
    expect(bodyError(() => decodeBody(bytes, enc)).reason).toBe("undecodable");
  });
});
