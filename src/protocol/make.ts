import { Clock, Result } from "effect";
import { decodeMessage } from "./decode-message.ts";
import { PROTOCOL_VERSION } from "./fields.ts";
import { COMMAND_TYPES, type CommandResult, type MESSAGE_SCHEMAS, type MessageOf, type MessageType } from "./messages.ts";
import { newMessageId } from "./message-id.ts";
import type { ProtocolError } from "./protocol-error.ts";

/**
 * The message builders: one per message, each the Schema's own decoding of what it is given.
 * Each fills message_id (a fresh UUID), timestamp (now, unless given), version and source, then
 * decodes the result: defaults are the Schema's, and an invalid message is caught where it is
 * built. Building one is a programming error, so it throws the ProtocolError. With fast paths
 * on, the messages made on every command (LifecycleTransitionCommand, CommandResult,
 * StateTransitionEvent) are checked by their fast decoders (fast/), pinned to the Schemas.
 *
 * esper's own code passes `timestamp` from the Clock it runs under; without one, a builder reads
 * Effect's default (live) Clock.
 */

export const DEFAULT_SOURCE = "esper";

type Filled = "message_type" | "version" | "message_id" | "timestamp" | "source";

/** A message's wire fields, defaulted ones optional, minus what the builder fills (which may still be given). */
export type MessageInput<T extends MessageType> = Omit<(typeof MESSAGE_SCHEMAS)[T]["Encoded"], Filled> & {
  readonly message_id?: string;
  /** Seconds since the epoch; default now. */
  readonly timestamp?: number;
  readonly source?: string;
};

/**
 * Builds a message of any type: sets message_type and version (PROTOCOL_VERSION), fills message_id (a fresh UUID), timestamp
 * (now, seconds since the epoch) and source ("esper") unless given, then decodes it with decodeMessage, so the result has the
 * Schema's defaults filled in. Throws the ProtocolError (`invalid_message`) when the input is not a valid message.
 */
export const makeMessage = <T extends MessageType>(type: T, input: MessageInput<T>): MessageOf<T> => {
  // Object.assign, not a spread: `{ ...input, more }` measured 4-6 µs a message on V8 12, this 0.2.
  const message = Object.assign({ message_type: type, message_id: "", timestamp: 0, source: DEFAULT_SOURCE, version: PROTOCOL_VERSION }, input) as Record<string, unknown>;
  message.message_type = type;
  message.version = PROTOCOL_VERSION;
  message.message_id = input.message_id ?? newMessageId();
  message.timestamp = input.timestamp ?? Clock.Clock.defaultValue().currentTimeMillisUnsafe() / 1000;
  message.source = input.source ?? DEFAULT_SOURCE;
  const decoded = decodeMessage(message);
  if (Result.isFailure(decoded)) throw decoded.failure;
  return decoded.success as MessageOf<T>;
};

const maker =
  <T extends MessageType>(type: T) =>
  (input: MessageInput<T>): MessageOf<T> =>
    makeMessage(type, input);

/** Builds a LifecycleTransitionCommand (one seed, or every seed with seed_id null, to target_state); see makeMessage. */
export const lifecycleCommand = maker("LifecycleTransitionCommand");
/** Builds a BlueprintUpdateCommand (graft a blueprint into a seed); see makeMessage. */
export const blueprintUpdateCommand = maker("BlueprintUpdateCommand");
/**
 * Builds a BatchCommand (see makeMessage): `commands` are complete messages (from lifecycleCommand or
 * blueprintUpdateCommand), 1 to MAX_BATCH_COMMANDS of them, all for one layer; throws ProtocolError otherwise.
 */
export const batchCommand = maker("BatchCommand");
/** Builds an EmergencyStopCommand (see makeMessage); without layer_id it stops every layer and goes on `P.control.all`. */
export const emergencyStopCommand = maker("EmergencyStopCommand");
/** Builds a ResumeCommand (esper's extension: lifts a layer's emergency stop); see makeMessage. */
export const resumeCommand = maker("ResumeCommand");
/** Builds a CommandResult answering the command whose message_id is `correlation_id`; without `code`, "ok" or "internal" by `success`. */
export const commandResult = maker("CommandResult");
/** Builds a StateTransitionEvent (a seed moved from one lifecycle state to another); see makeMessage. */
export const stateTransitionEvent = maker("StateTransitionEvent");
/** Builds a BlueprintEvent (a blueprint updated, validated or rolled back on a seed); see makeMessage. */
export const blueprintEvent = maker("BlueprintEvent");
/** Builds a CheckpointEvent (a seed's checkpoint created, deleted or recovered); see makeMessage. */
export const checkpointEvent = maker("CheckpointEvent");
/** Builds a PerformanceAlert about a metric of a layer or seed; see makeMessage. */
export const performanceAlert = maker("PerformanceAlert");
/** Builds a LayerHealthReport, a layer's telemetry (`performance_summary.epoch` is the trainer's epoch count); see makeMessage. */
export const layerHealthReport = maker("LayerHealthReport");
/** Builds a SeedMetricsSnapshot, one seed's telemetry; see makeMessage. */
export const seedMetricsSnapshot = maker("SeedMetricsSnapshot");
/** Builds a ServiceAnnouncement for the coordination stream; see makeMessage. */
export const serviceAnnouncement = maker("ServiceAnnouncement");
/** Builds a Heartbeat for the coordination stream (`load`: one number or a map of them); see makeMessage. */
export const heartbeat = maker("Heartbeat");
/** Builds a CoordinationRequest (a lock, election or barrier on a resource; `timeout_ms` has no default); see makeMessage. */
export const coordinationRequest = maker("CoordinationRequest");
/** Builds a CoordinationResponse to a CoordinationRequest; see makeMessage. */
export const coordinationResponse = maker("CoordinationResponse");

/** batch_size defaults to the number of messages. */
export const telemetryBatch = (
  input: Omit<MessageInput<"TelemetryBatch">, "batch_size"> & { readonly batch_size?: number },
): MessageOf<"TelemetryBatch"> => makeMessage("TelemetryBatch", { ...input, batch_size: input.batch_size ?? input.messages.length });

/**
 * The failed CommandResult answering an entry that did not decode, when it can be attributed
 * to a command (docs/protocol.md: "a CommandResult when the command can be attributed, otherwise a
 * dead-letter entry"). undefined: dead-letter it.
 * @param layer_id the layer whose stream the entry was read from.
 */
export const rejectionResult = (error: ProtocolError, layer_id: string, source?: string, timestamp?: number): CommandResult | undefined => {
  const partial = error.partial;
  if (partial?.message_id === undefined || partial.message_type === undefined) return undefined;
  if (!(COMMAND_TYPES as ReadonlySet<string>).has(partial.message_type)) return undefined;
  return commandResult({
    correlation_id: partial.message_id,
    layer_id,
    seed_id: partial.seed_id ?? null,
    success: false,
    error: error.message,
    code: error.code,
    execution_time_ms: 0,
    ...(source === undefined ? {} : { source }),
    ...(timestamp === undefined ? {} : { timestamp }),
  });
};
