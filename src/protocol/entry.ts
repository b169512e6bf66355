import { Result } from "effect";
import { createHmac, timingSafeEqual } from "node:crypto";
import { entryBytes, type EntryFields } from "../bus/bus.ts";
import { attachedEntry, attachmentOf } from "./fast/in-process-entry.ts";
import { fastPaths } from "./fast/switch.ts";
import { BodyError, DEFAULT_CODEC, decodeBody, encodeBody, type Codec } from "./codec.ts";
import { decodeMessage } from "./decode-message.ts";
import { DEFAULT_MAX_INFLATED_BYTES, DEFAULT_MAX_MESSAGE_BYTES, MAX_ENTRY_OVERHEAD_BYTES } from "./limits.ts";
import type { Message } from "./messages.ts";
import { attribute, ProtocolError } from "./protocol-error.ts";
import { isControlStream } from "./streams.ts";

/**
 * A message to and from the fields of one stream entry (docs/protocol.md "Stream entries"):
 * `data` (the encoded message), `type`, `enc`, and `sig` when the deployment has a key.
 */

/** A deployment's shared HMAC-SHA256 key: bytes, or a string used as its UTF-8 bytes. */
export type HmacKey = string | Uint8Array;

/** How encodeEntry writes an entry: for which stream, with which codec (default DEFAULT_CODEC), and whether it signs. */
export interface EncodeOptions {
  /** The stream the entry goes to: the signature covers it, so an entry cannot be replayed elsewhere. */
  readonly stream: string;
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
}

/** Limits and signature checks for decodeEntry; every field is optional and defaults as noted. */
export interface DecodeOptions {
  /** Largest `data` accepted, checked before anything is decoded. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Largest a deflated `data` may inflate to. Default 16 MiB. */
  readonly maxInflatedBytes?: number;
  /** The deployment's key. Without one, `sig` is not checked. */
  readonly hmacKey?: HmacKey;
  /** Refuse entries without `sig`. Default: when a key is set, on control streams (docs/protocol.md). */
  readonly requireSig?: boolean;
}

/** Hex HMAC-SHA256 over `stream + "\n" + type + "\n" + data`. */
export const signEntry = (key: HmacKey, stream: string, type: string, data: Uint8Array): string =>
  createHmac("sha256", key).update(`${stream}\n${type}\n`, "utf8").update(data).digest("hex");

/**
 * The fields of a stream entry for `message`: `data`, `type`, `enc` (none for the "reference" codec) and `sig` when a key is
 * given. It neither validates nor size-checks: build messages with the builders, and keep `data` within readers' maxBytes.
 */
export const encodeEntry = (message: Message, options: EncodeOptions): EntryFields => {
  const codec = options.codec ?? DEFAULT_CODEC;
  const data = encodeBody(message, codec);
  const type = message.message_type;
  const fields: Record<string, Uint8Array | string> = { data, type };
  if (codec !== "reference") fields.enc = codec;
  if (options.hmacKey !== undefined) fields.sig = signEntry(options.hmacKey, options.stream, type, data);
  return fields as EntryFields;
};

/**
 * The same entry for a bus that keeps it in this process (MemoryBus). A fast path: the message
 * travels as an object and is encoded only if something reads `data` (fast/in-process-entry.ts).
 * `trusted`: built by esper itself, so the reader skips the schema check. With fast paths off,
 * it is the encoded entry.
 */
export const encodeEntryInProcess = (message: Message, options: EncodeOptions & { readonly trusted: boolean }): EntryFields => {
  if (!fastPaths()) return encodeEntry(message, options);
  const codec = options.codec ?? DEFAULT_CODEC;
  return attachedEntry(message, options.trusted, codec === "reference" ? undefined : codec, options.hmacKey !== undefined, encodeEntry, options);
};

/** Largest an entry may be, all its fields together, for a reader whose `data` limit is `maxBytes`. */
export const maxEntryBytes = (maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES): number => maxBytes + MAX_ENTRY_OVERHEAD_BYTES;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Entry fields arrive as bytes or strings depending on the client; a field that is neither is absent. */
const text = (u: unknown): string | undefined => {
  if (typeof u === "string") return u;
  if (u instanceof Uint8Array) {
    try {
      return utf8.decode(u);
    } catch {
      return undefined;
    }
  }
  return undefined;
};
const bytes = (u: unknown): Uint8Array | undefined =>
  u instanceof Uint8Array ? u : typeof u === "string" ? encoder.encode(u) : undefined;

const fail = (code: ProtocolError["code"], message: string, typeField: string | undefined, parsed?: unknown) =>
  Result.fail(new ProtocolError({ code, message, partial: attribute(parsed, typeField) }));

const HEX_SIG = /^[0-9a-fA-F]{64}$/;

const signatureMatches = (key: HmacKey, stream: string, type: string, data: Uint8Array, sig: string): boolean => {
  if (!HEX_SIG.test(sig)) return false;
  return timingSafeEqual(Buffer.from(signEntry(key, stream, type, data), "hex"), Buffer.from(sig, "hex"));
};

/**
 * The message in an entry read from `stream`, or why there is none. Checks, in order: size of
 * the raw bytes, signature, codec, schema, so nothing is parsed that is too big or unsigned.
 * An entry made in this process (encodeEntryInProcess) has no bytes to check or parse and cannot
 * be forged from outside: its message is taken as it is when esper built it, else its schema is
 * checked; unless the reader has an HMAC key, in which case its bytes are made and checked like
 * any entry's (so an unsigned one is refused in process too). Never throws.
 */
export const decodeEntry = (
  stream: string,
  fields: Readonly<Record<string, unknown>>,
  options: DecodeOptions = {},
): Result.Result<Message, ProtocolError> => {
  let typeField: string | undefined;
  try {
    // With a key, an in-process entry is judged from its bytes like any other: signed or refused.
    const attached = options.hmacKey === undefined ? attachmentOf(fields) : undefined;
    if (attached !== undefined) return attached.trusted ? Result.succeed(attached.message) : decodeMessage(attached.message, attached.message.message_type);
    typeField = text(fields.type);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    // Every field counts, not only data: a writer could add a 10 MB field of any name.
    const total = entryBytes(fields as EntryFields);
    if (total > maxEntryBytes(maxBytes)) {
      return fail(
        "too_large",
        `the entry's fields add up to ${total} bytes, over the ${maxEntryBytes(maxBytes)}-byte limit (data up to ${maxBytes}, other fields up to ${MAX_ENTRY_OVERHEAD_BYTES}); send large payloads by claim check`,
        typeField !== undefined && typeField.length <= 64 ? typeField : undefined,
      );
    }
    const data = bytes(fields.data);
    if (data !== undefined && data.byteLength > maxBytes) {
      return fail(
        "too_large",
        `data is ${data.byteLength} bytes, over the ${maxBytes}-byte limit; send large payloads by claim check or raise maxBytes on every reader`,
        typeField,
      );
    }
    if (data === undefined) return fail("invalid_message", "entry has no data field", typeField);
    if (typeField === undefined) return fail("invalid_message", "entry has no type field; set it to the message_type", typeField);

    const { hmacKey } = options;
    if (hmacKey !== undefined) {
      const sig = text(fields.sig);
      const requireSig = options.requireSig ?? isControlStream(stream);
      if (sig === undefined && requireSig) {
        return fail("bad_signature", `entry on ${stream} has no sig; this deployment requires signed entries: sign with the shared key`, typeField);
      }
      if (sig !== undefined && !signatureMatches(hmacKey, stream, typeField, data, sig)) {
        return fail("bad_signature", `sig does not match the entry; the writer must sign stream + "\\n" + type + "\\n" + data with the shared key`, typeField);
      }
    }

    let parsed: unknown;
    try {
      parsed = decodeBody(data, text(fields.enc), options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES);
    } catch (e) {
      if (e instanceof BodyError) return fail(e.reason === "too_large" ? "too_large" : "invalid_message", e.message, typeField);
      throw e;
    }
    return decodeMessage(parsed, typeField);
  } catch (e) {
    return fail("invalid_message", `entry could not be read: ${String(e)}`, typeField);
  }
};
