import { Result, Schema } from "effect";
import { decodeLifecycleTransitionCommand } from "./fast/command-decoder.ts";
import { decodeCommandResult, decodeStateTransitionEvent } from "./fast/event-decoders.ts";
import { fastPaths } from "./fast/switch.ts";
import { PROTOCOL_VERSION, VERSION_PATTERN } from "./fields.ts";
import { DECODE_LIMITS, MAX_BATCH_COMMANDS } from "./limits.ts";
import { COMMAND_TYPES, isMessageType, MESSAGE_SCHEMAS, MESSAGE_TYPES, type Message, type MessageOf, type MessageType } from "./messages.ts";
import { attribute, ProtocolError } from "./protocol-error.ts";

/**
 * A parsed map (the output of a codec) to a typed message, or an `invalid_message` error.
 *
 * Before its schema looks at it, a message is held to DECODE_LIMITS (nesting, string length,
 * entries per map or list; a command's free-form maps and a batch's length more tightly), so a
 * hostile message costs a bounded walk, not a schema decode of a hundred thousand orders. Then
 * its Effect Schema (messages.ts, the one definition of every message) decides. With fast paths
 * on (fast/switch.ts), the three messages read on every command (LifecycleTransitionCommand,
 * CommandResult, StateTransitionEvent) are first offered to hand-written decoders that accept
 * exactly what their Schema accepts (property tests pin them) and step aside for anything else.
 * Never throws.
 */

// Compiled once per type: building the decoder is the expensive part of a Schema call.
const schemaDecoders = Object.fromEntries(
  MESSAGE_TYPES.map((t) => [t, Schema.decodeUnknownResult(MESSAGE_SCHEMAS[t] as Schema.Decoder<unknown>)]),
) as { readonly [T in MessageType]: (u: unknown) => Result.Result<unknown, Schema.SchemaError> };

const FAST_DECODERS: Partial<Record<MessageType, (u: unknown) => Message | undefined>> = {
  LifecycleTransitionCommand: decodeLifecycleTransitionCommand,
  CommandResult: decodeCommandResult,
  StateTransitionEvent: decodeStateTransitionEvent,
};

const isMap = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u);

// The text goes into a CommandResult and a dead letter; a huge bad value must not make those huge too.
const MAX_ERROR_TEXT = 1_000;
const clip = (s: string): string => (s.length <= MAX_ERROR_TEXT ? s : `${s.slice(0, MAX_ERROR_TEXT)}... (${s.length - MAX_ERROR_TEXT} more chars)`);

/** A value for an error text: short, and safe for any input (JSON.stringify throws on bigint). */
const show = (u: unknown): string => (typeof u === "string" ? JSON.stringify(u.length > 64 ? `${u.slice(0, 64)}...` : u) : typeof u === "object" ? (u === null ? "null" : "a map or list") : String(u));

const invalid = (message: string, parsed: unknown, typeField: string | undefined): Result.Result<never, ProtocolError> =>
  Result.fail(new ProtocolError({ code: "invalid_message", message: clip(message), partial: attribute(parsed, typeField) }));

/**
 * Where `value` passes a bound of DECODE_LIMITS, what it passed; undefined when within them.
 * Recursive, but never deeper than DECODE_LIMITS.maxDepth (it stops there), so a deep message
 * cannot overflow the call stack; and it allocates nothing while the message is within bounds
 * (it runs on every command read).
 */
export const limitBreach = (value: unknown): string | undefined => breachIn(value, 0, "message");

const breachIn = (v: unknown, depth: number, path: string): string | undefined => {
  if (typeof v === "string") return v.length > DECODE_LIMITS.maxStringLength ? `${path} is a string of ${v.length} characters, over the limit of ${DECODE_LIMITS.maxStringLength}` : undefined;
  if (typeof v !== "object" || v === null || ArrayBuffer.isView(v)) return undefined;
  if (depth >= DECODE_LIMITS.maxDepth) return `${path} nests maps and lists more than ${DECODE_LIMITS.maxDepth} deep`;
  if (Array.isArray(v)) {
    if (v.length > DECODE_LIMITS.maxEntries) return `${path} is a list of ${v.length} entries, over the limit of ${DECODE_LIMITS.maxEntries}`;
    for (let i = 0; i < v.length; i++) {
      const breach = breachIn(v[i], depth + 1, path);
      if (breach !== undefined) return breach;
    }
    return undefined;
  }
  let entries = 0;
  for (const key in v) {
    if (!Object.hasOwn(v, key)) continue;
    if (++entries > DECODE_LIMITS.maxEntries) return `${path} is a map of more than ${DECODE_LIMITS.maxEntries} entries, over the limit`;
    if (key.length > DECODE_LIMITS.maxStringLength) return `${path} has a key of ${key.length} characters, over the limit of ${DECODE_LIMITS.maxStringLength}`;
    const breach = breachIn((v as Record<string, unknown>)[key], depth + 1, depth === 0 ? key : path);
    if (breach !== undefined) return breach;
  }
  return undefined;
};

/** Whether `m` is a map of more than maxCommandMapKeys keys; counts without allocating (it runs on every command). */
const overKeys = (m: unknown): boolean => {
  if (!isMap(m)) return false;
  let n = 0;
  for (const key in m) if (Object.hasOwn(m, key) && ++n > DECODE_LIMITS.maxCommandMapKeys) return true;
  return false;
};

/** The tighter bounds of commands: checked on the raw map, so a hostile command is refused for the price of a look. */
const commandBreach = (type: MessageType, parsed: Readonly<Record<string, unknown>>): string | undefined => {
  if (!COMMAND_TYPES.has(type)) return undefined;
  const tooMany = (c: Readonly<Record<string, unknown>>): string | undefined =>
    overKeys(c.parameters) || overKeys(c.metadata) || overKeys(c.configuration) || overKeys(c.validation_metrics)
      ? `a command's parameters, metadata, configuration and validation_metrics hold at most ${DECODE_LIMITS.maxCommandMapKeys} keys each`
      : undefined;
  if (type === "BatchCommand") {
    const commands = parsed.commands;
    if (Array.isArray(commands)) {
      if (commands.length > MAX_BATCH_COMMANDS) return `BatchCommand holds ${commands.length} commands, over the limit of ${MAX_BATCH_COMMANDS}; split it into several batches`;
      for (const c of commands) if (isMap(c)) {
        const breach = tooMany(c);
        if (breach !== undefined) return breach;
      }
    }
  }
  return tooMany(parsed);
};

/**
 * A parsed map (what a codec returns) as a typed message with its defaults filled in, or an `invalid_message` ProtocolError
 * (unknown type, unsupported version, over DECODE_LIMITS, or not matching its Schema). Never throws.
 * @param typeField the entry's `type` field, when decoding an entry: it must equal `message_type`.
 */
export const decodeMessage = (parsed: unknown, typeField?: string): Result.Result<Message, ProtocolError> => {
  try {
    if (!isMap(parsed)) return invalid("data is not a map; a message is a map with snake_case keys (docs/protocol.md)", parsed, typeField);
    const type = parsed.message_type;
    if (typeField !== undefined && type !== typeField) {
      return invalid(`entry type ${show(typeField)} differs from message_type ${show(type)}; the writer must set both to the same name`, parsed, typeField);
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
    const breach = commandBreach(type, parsed) ?? limitBreach(parsed);
    if (breach !== undefined) return invalid(`${type} is over a decoding limit: ${breach}`, parsed, typeField);
    if (fastPaths()) {
      const fast = FAST_DECODERS[type]?.(parsed);
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
