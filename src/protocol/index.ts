/** The wire protocol (docs/protocol.md): message schemas, codecs, entries, stream names, limits. */
export * from "./codec.ts";
export * from "./decode-message.ts";
export * from "./entry.ts";
export {
  ALERT_TYPES,
  AlertType,
  BLUEPRINT_OPERATIONS,
  BlueprintOperation,
  CHECKPOINT_OPERATIONS,
  CheckpointOperation,
  COORDINATION_OPERATIONS,
  CoordinationOperation,
  GraftingStrategy,
  LAYER_ID_PATTERN,
  LayerId,
  MessageId,
  PRIORITIES,
  Priority,
  PROTOCOL_VERSION,
  ResultCodeSchema,
  SeedId,
  SeedStateName,
  SERVICE_STATUSES,
  ServiceStatus,
  SEVERITIES,
  Severity,
  TRIGGERS,
  TriggeredBy,
  VERSION_PATTERN,
} from "./fields.ts";
export * from "./limits.ts";
export * from "./make.ts";
export * from "./messages.ts";
export * from "./protocol-error.ts";
export * from "./streams.ts";
export { fastPaths, setFastPaths } from "./fast/switch.ts";
