/**
 * What a layer writes must be readable by every reader, and readers refuse entries over their
 * size limit (docs/protocol.md "too_large"). A command up to that limit can make an answer over it:
 * a 1 MB stop reason is quoted by every refusal while the layer is stopped, twice in a batch's
 * result. So an answer or event that comes out too large is shrunk before it is written: long
 * strings are clipped, and if that is not enough, its free-form map (`details`,
 * `metrics_snapshot`) is replaced by a note. Messages of normal size are never touched.
 */
import type { Message } from "../protocol/messages.ts";

/** Strings kept whole; longer ones keep this many characters and say how many were cut. */
export const MAX_STRING = 1_000;

const clip = (s: string): string => (s.length <= MAX_STRING ? s : `${s.slice(0, MAX_STRING)}... (${s.length - MAX_STRING} more chars)`);

const clipStrings = (value: unknown): unknown => {
  if (typeof value === "string") return clip(value);
  if (Array.isArray(value)) return value.map(clipStrings);
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clipStrings(v)]));
  }
  return value;
};

/**
 * `message` as small as it must be to encode within `maxBytes`, by `encode`'s measure: itself
 * when it fits, else with long strings clipped, else with its free-form map replaced as well.
 */
export const boundedMessage = <M extends Message, E extends { readonly data: Uint8Array }>(
  message: M,
  maxBytes: number,
  encode: (message: M) => E,
): E => {
  const whole = encode(message);
  if (whole.data.byteLength <= maxBytes) return whole;
  const clipped = clipStrings(message) as M;
  const fields = encode(clipped);
  if (fields.data.byteLength <= maxBytes) return fields;
  const note = { truncated: true, original_bytes: whole.data.byteLength };
  const emptied =
    clipped.message_type === "CommandResult"
      ? { ...clipped, details: note }
      : clipped.message_type === "StateTransitionEvent"
        ? { ...clipped, metrics_snapshot: {}, metadata: note }
        : clipped;
  return encode(emptied as M);
};
