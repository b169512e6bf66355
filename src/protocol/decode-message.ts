import { Result, Schema } from "effect";
import { decodeLifecycleTransitionCommand } from "./command-records.ts";
import { decodeCommandResult, decodeStateTransitionEvent } from "./event-records.ts";
import { PROTOCOL_VERSION, VERSION_PATTERN } from "./fields.ts";
import { isMessageType, MESSAGE_SCHEMAS, MESSAGE_TYPES, type Message, type MessageOf, type MessageType } from "./messages.ts";
import { attribute, ProtocolError } from "./protocol-error.ts";
import { decodeTelemetry, isTelemetryType } from "./telemetry-records.ts";

/**
 * A parsed map (the output of a codec) to a typed message, or an `invalid_message` error.
 * Telemetry goes through the hand-written decoders of telemetry-records.ts, a plainly valid
 * LifecycleTransitionCommand through the fast path of command-records.ts, a plainly valid
 * CommandResult or StateTransitionEvent through those of event-records.ts, everything else
 * through its Schema. Never throws.
 */

// Compiled once per type: building the decoder is the expensive part of a Schema call.
const schemaDecoders = Object.fromEntries(
  MESSAGE_TYPES.map((t) => [t, Schema.decodeUnknownResult(MESSAGE_SCHEMAS[t] as Schema.Decoder<unknown>)]),
) as { readonly [T in MessageType]: (u: unknown) => Result.Result<unknown, Schema.SchemaError> };

const isMap = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u);

// The text goes into a CommandResult and a dead letter; a huge bad value must not make those huge too.
const MAX_ERROR_TEXT = 1_000;
const clip = (s: string): string => (s.length <= MAX_ERROR_TEXT ? s : `${s.slice(0, MAX_ERROR_TEXT)}... (${s.length - MAX_ERROR_TEXT} more chars)`);

/** A value for an error text: short, and safe for any input (JSON.stringify throws on bigint). */
const show = (u: unknown): string => (typeof u === "string" ? JSON.stringify(u.length > 64 ? `${u.slice(0, 64)}...` : u) : typeof u === "object" ? (u === null ? "null" : "a map or list") : String(u));

const invalid = (message: string, parsed: unknown, typeField: string | undefined): Result.Result<never, ProtocolError> =>
  Result.fail(new ProtocolError({ code: "invalid_message", message: clip(message), partial: attribute(parsed, typeField) }));

/**
 * @param typeField the entry's `type` field, when decoding an entry: it must equal `message_type`.
 */
export const decodeMessage = (parsed: unknown, typeField?: string): Result.Result<Message, ProtocolError> => {
  try {
    if (!isMap(parsed)) return invalid("data is not a map; a message is a map with snake_case keys (PROTOCOL.md)", parsed, typeField);
    const type = parsed.message_type;
    if (typeField !== undefined && type !== typeField) {
      return invalid(
        `entry type ${show(typeField)} differs from message_type ${show(type)}; the writer must set both to the same name`,
        parsed,
        typeField,
      );
    }
    if (!isMessageType(type)) {
      return invalid(`unknown message_type ${show(type)}; expected one of ${MESSAGE_TYPES.join(", ")}`, parsed, typeField);
    }
    const version = parsed.version;
    if (typeof version !== "string" || !VERSION_PATTERN.test(version)) {
      return invalid(
        `unsupported protocol version ${show(version)}; this reader speaks "${PROTOCOL_VERSION}" (any 1.x); upgrade the reader or downgrade the writer`,
        parsed,
        typeField,
      );
    }
    if (isTelemetryType(type)) {
      const decoded = decodeTelemetry(type, parsed);
      if (decoded.ok) return Result.succeed(decoded.value);
      const at = decoded.rejection.path === "" ? "" : ` at ${decoded.rejection.path}`;
      return invalid(`${type} does not match its schema: expected ${decoded.rejection.expected}${at}`, parsed, typeField);
    }
    if (type === "LifecycleTransitionCommand") {
      // The hot command: the fast path decides what is plainly valid, the Schema the rest (and says why).
      const fast = decodeLifecycleTransitionCommand(parsed);
      if (fast !== undefined) return Result.succeed(fast);
    } else if (type === "CommandResult") {
      // The events every client and controller reads most: same split as the hot command.
      const fast = decodeCommandResult(parsed);
      if (fast !== undefined) return Result.succeed(fast);
    } else if (type === "StateTransitionEvent") {
      const fast = decodeStateTransitionEvent(parsed);
      if (fast !== undefined) return Result.succeed(fast);
    }
    const decoded = schemaDecoders[type](parsed);
    if (Result.isSuccess(decoded)) return Result.succeed(decoded.success as Message);
    return invalid(`${type} does not match its schema: ${decoded.failure.message}`, parsed, typeField);
  } catch (e) {
    // A getter or proxy in the input could throw anything: still an answer, never an exception.
    return invalid(`message could not be read: ${String(e)}`, parsed, typeField);
  }
};

/** Decodes as one given type; a message of another type is an `invalid_message`. */
export const decodeMessageAs = <T extends MessageType>(type: T, parsed: unknown): Result.Result<MessageOf<T>, ProtocolError> =>
  decodeMessage(parsed, type) as Result.Result<MessageOf<T>, ProtocolError>;
