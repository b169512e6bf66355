/**
 * `esper/protocol`: the wire format (docs/protocol.md) for programs that read or write esper's
 * streams themselves: one Effect Schema and one builder per message, the entry encoding
 * (codec, compression, HMAC signature), stream names and the limits a reader enforces.
 */
export { PROTOCOL_VERSION } from "../protocol/fields.ts";
export {
  makeMessage,
  lifecycleCommand,
  blueprintUpdateCommand,
  batchCommand,
  emergencyStopCommand,
  resumeCommand,
  commandResult,
  stateTransitionEvent,
  blueprintEvent,
  checkpointEvent,
  performanceAlert,
  layerHealthReport,
  seedMetricsSnapshot,
  telemetryBatch,
  serviceAnnouncement,
  heartbeat,
  coordinationRequest,
  coordinationResponse,
  type MessageInput,
} from "../protocol/make.ts";
export {
  LifecycleTransitionCommand,
  BlueprintUpdateCommand,
  BatchCommand,
  EmergencyStopCommand,
  ResumeCommand,
  CommandResult,
  StateTransitionEvent,
  BlueprintEvent,
  CheckpointEvent,
  PerformanceAlert,
  LayerHealthReport,
  SeedMetricsSnapshot,
  TelemetryRecord,
  TelemetryBatch,
  ServiceAnnouncement,
  Heartbeat,
  CoordinationRequest,
  CoordinationResponse,
  Message,
  MESSAGE_SCHEMAS,
  MESSAGE_TYPES,
  isMessageType,
  isCommand,
  type MessageType,
  type MessageOf,
  type Command,
  type Event,
  type Telemetry,
  type Coordination,
} from "../protocol/messages.ts";
export { encodeEntry, decodeEntry, signEntry, type EncodeOptions, type DecodeOptions, type HmacKey } from "../protocol/entry.ts";
export { decodeMessage } from "../protocol/decode-message.ts";
export { CODECS, DEFAULT_CODEC, type Codec } from "../protocol/codec.ts";
export { streams, parseKey, GROUPS, DEFAULT_NAMESPACE, TOPOLOGIES, isLayerId, type Streams, type ReferenceStreams, type ParsedKey, type Topology } from "../protocol/streams.ts";
export { ProtocolError, PROTOCOL_ERROR_CODES, type ProtocolErrorCode } from "../protocol/protocol-error.ts";
export { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_INFLATED_BYTES, MAX_BATCH_COMMANDS } from "../protocol/limits.ts";
