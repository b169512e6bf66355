/**
 * Step 1 of the bridge: entries read from a control stream to messages, or to why not. Pure.
 *
 * Beyond what decodeEntry checks (size, signature, codec, schema), two things only the bridge
 * knows: an oversize stub (the bus left the entry on the server, ReaderOptions.maxEntryBytes) is
 * `too_large`, and a signed command must be fresh: written (its entry id is Redis's clock at XADD)
 * within `maxSignedAgeMs` of its own timestamp, so a captured signed entry written again later is
 * `bad_signature` whatever the dedupe window still remembers.
 */
import { Result } from "effect";
import type { Entry } from "../bus/bus.ts";
import { parseStreamId } from "../bus/stream-id.ts";
import { decodeEntry, maxEntryBytes, type HmacKey } from "../protocol/entry.ts";
import { COMMAND_TYPES, type Message } from "../protocol/messages.ts";
import { ProtocolError } from "../protocol/protocol-error.ts";

/** An entry as the bridge read it. */
export interface Read {
  readonly stream: string;
  readonly entry: Entry;
  /**
   * Found ahead of the group by the emergency-stop look-ahead: never delivered to the group, so it
   * is removed from its stream when settled (XDEL) instead of acked.
   */
  readonly ahead?: true;
}

export type Decoded =
  | { readonly read: Read; readonly ok: true; readonly message: Message }
  | { readonly read: Read; readonly ok: false; readonly error: ProtocolError };

export interface DecodeOptions {
  readonly maxBytes: number;
  readonly hmacKey: HmacKey | undefined;
  readonly maxSignedAgeMs: number;
}

const stale = (written: number, timestamp: number, options: DecodeOptions): string | undefined => {
  const skew = Math.abs(written - timestamp * 1000);
  return skew > options.maxSignedAgeMs
    ? `signed entry was written ${Math.round(skew / 1000)} s away from its own timestamp, over the ${options.maxSignedAgeMs / 1000} s a signed command may take to reach Redis; a captured entry cannot be written again, so sign a new command`
    : undefined;
};

export const decodeRead = (read: Read, options: DecodeOptions): Decoded => {
  const { entry } = read;
  if (entry.oversize !== undefined) {
    const limit = maxEntryBytes(options.maxBytes);
    const error = new ProtocolError({
      code: "too_large",
      message: `the entry's fields add up to ${entry.oversize} bytes, over the ${limit}-byte limit; it was left where it was and dead-lettered whole`,
      ...(entry.fields.type === "" ? {} : { partial: { message_type: entry.fields.type } }),
    });
    return { read, ok: false, error };
  }
  const decoded = decodeEntry(read.stream, entry.fields, {
    maxBytes: options.maxBytes,
    ...(options.hmacKey === undefined ? {} : { hmacKey: options.hmacKey }),
  });
  if (Result.isFailure(decoded)) return { read, ok: false, error: decoded.failure };
  const message = decoded.success;
  if (options.hmacKey !== undefined && COMMAND_TYPES.has(message.message_type)) {
    const written = parseStreamId(entry.id)?.ms;
    const why = written === undefined ? undefined : stale(written, message.timestamp, options);
    if (why !== undefined) {
      const error = new ProtocolError({
        code: "bad_signature",
        message: why,
        partial: { message_type: message.message_type, message_id: message.message_id, ...("layer_id" in message && message.layer_id !== null ? { layer_id: message.layer_id } : {}) },
      });
      return { read, ok: false, error };
    }
  }
  return { read, ok: true, message };
};

export const decodeReads = (reads: readonly Read[], options: DecodeOptions): Decoded[] => reads.map((read) => decodeRead(read, options));
