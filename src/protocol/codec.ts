import { Packr, type Options } from "msgpackr";
import { deflateSync, inflateSync } from "node:zlib";
import { DEFAULT_MAX_INFLATED_BYTES } from "./limits.ts";

/**
 * How a message map becomes the bytes of an entry's `data` field (docs/protocol.md "Stream entries").
 * `enc` names the codec on the entry; "reference" writes no `enc` and plain JSON, exactly what
 * the Python implementation writes, and is how a reader treats an entry without `enc`.
 */
export const CODECS = ["msgpack", "json", "msgpack+deflate", "json+deflate", "reference"] as const;
/** A codec name: msgpack or json, optionally deflated, or "reference" (plain JSON, no `enc` field, as the Python reference writes). */
export type Codec = (typeof CODECS)[number];
/** The codec encodeEntry uses when none is given. Use "json" or "reference" when reference (Python) readers read the stream. */
export const DEFAULT_CODEC: Codec = "msgpack";

export const isCodec = (u: unknown): u is Codec => typeof u === "string" && (CODECS as readonly string[]).includes(u);

/**
 * One instance for the process: reusing it keeps msgpackr's buffer pool warm.
 * Plain maps both ways, for readers in other languages: no records extension; maps decode to
 * objects; undefined goes out as nil; 64-bit integers come back as numbers where exact.
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
  // msgpackr 2.1 implements "auto" (number when exact, else bigint); its typings lag behind.
  int64AsType: "auto" as Options["int64AsType"],
  variableMapSize: true,
});

/** Why bytes could not be read. `too_large` is an inflate that passed its bound. */
export class BodyError {
  constructor(
    readonly reason: "too_large" | "undecodable",
    readonly message: string,
  ) {}
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

export const encodeBody = (value: unknown, codec: Codec): Uint8Array => {
  switch (codec) {
    case "msgpack":
      return packr.pack(value);
    case "msgpack+deflate":
      return deflateSync(packr.pack(value));
    case "json":
    case "reference":
      return encoder.encode(stringifyJson(value));
    case "json+deflate":
      return deflateSync(encoder.encode(stringifyJson(value)));
  }
};

/**
 * Reads `data` as `enc` says (undefined = the reference format). Throws BodyError only; the
 * entry decoder turns it into a ProtocolError.
 */
export const decodeBody = (data: Uint8Array, enc: string | undefined, maxInflatedBytes = DEFAULT_MAX_INFLATED_BYTES): unknown => {
  switch (enc) {
    case undefined:
      return parseJson(isZlib(data) ? inflate(data, maxInflatedBytes) : data);
    case "json":
      return parseJson(data);
    case "json+deflate":
      return parseJson(inflate(data, maxInflatedBytes));
    case "msgpack":
      return unpack(data);
    case "msgpack+deflate":
      return unpack(inflate(data, maxInflatedBytes));
    default:
      throw new BodyError("undecodable", `unknown enc ${JSON.stringify(enc)}; expected one of msgpack, json, msgpack+deflate, json+deflate, or none`);
  }
};

/**
 * A zlib stream starts with CMF 0x78 (deflate, 32K window) and a check byte making the pair a
 * multiple of 31: 0x78 0x9C is the default level, the one docs/protocol.md names, and other levels
 * (0x01, 0x5E, 0xDA) are zlib too. JSON text never starts with 'x', so this cannot misread one.
 */
export const isZlib = (data: Uint8Array): boolean => data.length >= 2 && data[0] === 0x78 && ((0x78 << 8) | data[1]!) % 31 === 0;

const inflate = (data: Uint8Array, maxOutputLength: number): Uint8Array => {
  try {
    // Output buffers sized for a typical 4x ratio: the 16 KiB default means many concatenations
    // for a telemetry batch (measured: 100 KB out in 0.35 ms instead of 0.75 ms).
    const chunkSize = Math.min(Math.max(data.byteLength * 4, 16 * 1024), 1024 * 1024);
    return inflateSync(data, { maxOutputLength, chunkSize });
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new BodyError("too_large", `data inflates to more than ${maxOutputLength} bytes`);
    }
    throw new BodyError("undecodable", `data is not valid zlib: ${(e as Error).message}`);
  }
};

const unpack = (data: Uint8Array): unknown => {
  try {
    return packr.unpack(data);
  } catch (e) {
    throw new BodyError("undecodable", `data is not valid msgpack: ${(e as Error).message}`);
  }
};

// Python's json.dumps writes NaN, Infinity and -Infinity as bare tokens; JSON.parse refuses them.
// Telemetry carries such values (a diverged loss), so both directions speak Python's dialect.
const NON_FINITE_TAG = "\u0000esper:";
const NON_FINITE: Readonly<Record<string, number>> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity };

const parseJson = (data: Uint8Array): unknown => {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    throw new BodyError("undecodable", "data is neither msgpack (no enc says so) nor UTF-8 JSON: invalid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    if (text.includes("NaN") || text.includes("Infinity")) {
      try {
        return JSON.parse(tagNonFiniteTokens(text), (_k, v) =>
          typeof v === "string" && v.startsWith(NON_FINITE_TAG) ? NON_FINITE[v.slice(NON_FINITE_TAG.length)] ?? v : v,
        );
      } catch {
        // fall through to the original error, which names the real problem
      }
    }
    throw new BodyError("undecodable", `data is not valid JSON: ${(e as Error).message}`);
  }
};

/** Quotes bare NaN/Infinity/-Infinity tokens outside strings as tagged strings. */
const tagNonFiniteTokens = (text: string): string => {
  let out = "";
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    for (const token of ["-Infinity", "Infinity", "NaN"]) {
      if (text.startsWith(token, i)) {
        out += text.slice(from, i) + JSON.stringify(NON_FINITE_TAG + token);
        i += token.length - 1;
        from = i + 1;
        break;
      }
    }
  }
  return out + text.slice(from);
};

const stringifyJson = (value: unknown): string => {
  let nonFinite = false;
  const text = JSON.stringify(value, (_k, v) => {
    if (typeof v === "number" && !Number.isFinite(v)) {
      nonFinite = true;
      return NON_FINITE_TAG + String(v);
    }
    return v;
  });
  if (!nonFinite) return text;
  // JSON.stringify escapes the tag's NUL as \u0000; swap each quoted tag for the bare token.
  return text.replace(/"\\u0000esper:(NaN|Infinity|-Infinity)"/g, "$1");
};
