import { Data } from "effect";
import { LAYER_ID_PATTERN } from "./fields.ts";
import { MAX_MESSAGE_ID_LENGTH } from "./limits.ts";

/**
 * Why an entry could not become a message. The codes are CommandResult codes (docs/protocol.md
 * "Command results"), so a reader can answer with them unchanged.
 */
export const PROTOCOL_ERROR_CODES = ["too_large", "bad_signature", "invalid_message"] as const;
/** The codes a ProtocolError carries: "too_large", "bad_signature" or "invalid_message". */
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/**
 * What could be read of a message that failed to decode, each field only when it has the right
 * shape: enough for the bridge to answer a command with a failed CommandResult instead of
 * dead-lettering it. `message_type` may come from the entry's `type` field alone.
 */
export interface Attribution {
  readonly message_type?: string;
  readonly message_id?: string;
  readonly layer_id?: string;
  /** null when the message addressed every seed of the layer. */
  readonly seed_id?: number | null;
}

/**
 * Why an entry or message could not be read (from decodeEntry and decodeMessage), or why a builder refused its input (thrown).
 * `code` can go unchanged into a CommandResult; `partial` is what could be read of the message, to answer or dead-letter it.
 */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{
  readonly code: ProtocolErrorCode;
  /** What went wrong and what to do about it, for an operator reading a dead letter. */
  readonly message: string;
  readonly partial?: Attribution;
}> {}

const isMap = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u);

const isTypeName = (u: unknown): u is string => typeof u === "string" && u.length >= 1 && u.length <= 64;

/** Best-effort attribution of a parsed but invalid message. Never throws. */
export const attribute = (parsed: unknown, typeField: string | undefined): Attribution => {
  const out: { -readonly [K in keyof Attribution]: Attribution[K] } = {};
  try {
    if (isTypeName(typeField)) out.message_type = typeField;
    if (!isMap(parsed)) return out;
    const { message_type, message_id, seed_id } = parsed;
    if (isTypeName(message_type) && out.message_type === undefined) out.message_type = message_type;
    if (typeof message_id === "string" && message_id.length >= 1 && message_id.length <= MAX_MESSAGE_ID_LENGTH) out.message_id = message_id;
    // A batch names its layer only through its commands.
    const commands = parsed.commands;
    const layer = parsed.layer_id ?? (Array.isArray(commands) && isMap(commands[0]) ? commands[0].layer_id : undefined);
    if (typeof layer === "string" && LAYER_ID_PATTERN.test(layer)) out.layer_id = layer;
    if (seed_id === null || (typeof seed_id === "number" && Number.isSafeInteger(seed_id) && seed_id >= 0)) out.seed_id = seed_id;
  } catch {
    // a hostile getter: keep what was read so far
  }
  return out;
};
