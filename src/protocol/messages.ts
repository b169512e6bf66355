import { Schema, SchemaGetter } from "effect";
import {
  AlertType,
  AnyMap,
  BlueprintOperation,
  CheckpointOperation,
  commonFields,
  CoordinationOperation,
  Count,
  defaulted,
  emptyList,
  emptyMap,
  GraftingStrategy,
  LayerId,
  MessageId,
  NonNegative,
  NumberMap,
  Priority,
  ResultCodeSchema,
  SeedId,
  SeedStateName,
  ServiceStatus,
  Severity,
  TriggeredBy,
} from "./fields.ts";
import { MAX_BATCH_COMMANDS } from "./limits.ts";

/**
 * The 16 messages of docs/protocol.md as Effect Schemas. Keys are snake_case exactly as on the wire;
 * a decoded message is the wire map with defaults filled in and nulls of optional fields removed,
 * so it can be encoded again as it is.
 *
 * Where docs/protocol.md names no default: a field documented as "or null" decodes absent to null,
 * a map decodes absent to {}, a list to [], a free-text reason to ""; everything else is required.
 *
 * Readers are tolerant where the reference implementation (the Python bus docs/protocol.md descends
 * from) writes looser types than ours: an optional number it writes as null (PerformanceAlert
 * `threshold`, CoordinationResponse `wait_time_ms`), Heartbeat `load` as a map of loads, a
 * SeedMetricsSnapshot `blueprint_id` as an integer (read as its decimal string), and its grafting
 * strategy names (fields.ts GraftingStrategy). Unknown extra fields are ignored.
 */

// TS types a spread of a generic as an intersection, which would merge an overridden common field
// (CommandResult's required correlation_id) with the optional one; Omit says what the spread does.
type TaggedFields<T extends string, F> = { readonly message_type: Schema.Literal<T> } & Omit<typeof commonFields, keyof F> & F;
const tagged = <const T extends string, const F extends Schema.Struct.Fields>(type: T, fields: F) =>
  Schema.Struct({ message_type: Schema.Literal(type), ...commonFields, ...fields } as TaggedFields<T, F>);

const nullableSeedId = defaulted(Schema.NullOr(SeedId), () => null);
const nullableString = defaulted(Schema.NullOr(Schema.String), () => null);
const reason = defaulted(Schema.String, () => "");
const timeoutMs = (ms: number) => defaulted(NonNegative, () => ms);
const priority = (p: Priority) => defaulted(Priority, () => p);

// ---- control -------------------------------------------------------------------------------

/**
 * Control: asks one seed (or, with seed_id null, every seed of the layer) to move to `target_state`: an edge of the lifecycle,
 * taken when its validators pass or `force` is set. Defaults: parameters {}, priority "normal", timeout_ms 5000, force false, reason "".
 */
export const LifecycleTransitionCommand = tagged("LifecycleTransitionCommand", {
  layer_id: LayerId,
  seed_id: nullableSeedId,
  target_state: SeedStateName,
  parameters: defaulted(AnyMap, emptyMap),
  priority: priority("normal"),
  timeout_ms: timeoutMs(5_000),
  force: defaulted(Schema.Boolean, () => false),
  reason,
});
export type LifecycleTransitionCommand = typeof LifecycleTransitionCommand.Type;

/**
 * Control: grafts blueprint `blueprint_id` into a seed with `grafting_strategy`.
 * Defaults: configuration {}, rollback_on_failure true, validation_metrics {}, priority "normal", timeout_ms 10000.
 */
export const BlueprintUpdateCommand = tagged("BlueprintUpdateCommand", {
  layer_id: LayerId,
  seed_id: SeedId,
  blueprint_id: Schema.String,
  grafting_strategy: GraftingStrategy,
  configuration: defaulted(AnyMap, emptyMap),
  rollback_on_failure: defaulted(Schema.Boolean, () => true),
  validation_metrics: defaulted(AnyMap, emptyMap),
  priority: priority("normal"),
  timeout_ms: timeoutMs(10_000),
});
export type BlueprintUpdateCommand = typeof BlueprintUpdateCommand.Type;

export const BatchableCommand = Schema.Union([LifecycleTransitionCommand, BlueprintUpdateCommand]);
export type BatchableCommand = typeof BatchableCommand.Type;

/** One batch is one layer's: it runs atomically inside that layer's actor, which spans nothing else. */
const batchStaysInOneLayer = Schema.makeFilter<{ readonly commands: ReadonlyArray<BatchableCommand> }>(
  ({ commands }) => commands.every((c) => c.layer_id === commands[0]!.layer_id),
  { expected: "a batch whose commands all share one layer_id" },
);

/**
 * Control: 1 to MAX_BATCH_COMMANDS LifecycleTransitionCommands and BlueprintUpdateCommands for one layer, answered by one
 * CommandResult. Defaults: atomic true, stop_on_error true, priority "normal", timeout_ms 30000; mixed layer_ids are refused.
 */
export const BatchCommand = tagged("BatchCommand", {
  commands: Schema.Array(BatchableCommand).check(Schema.isMinLength(1), Schema.isMaxLength(MAX_BATCH_COMMANDS)),
  atomic: defaulted(Schema.Boolean, () => true),
  stop_on_error: defaulted(Schema.Boolean, () => true),
  priority: priority("normal"),
  timeout_ms: timeoutMs(30_000),
}).check(batchStaysInOneLayer);
export type BatchCommand = typeof BatchCommand.Type;

/**
 * Control: cancels or rolls back the growing seeds of a layer (layer_id null: every layer, sent on `P.control.all`), or of one
 * seed; a stop of every seed also closes the layer to growth until a ResumeCommand. It overtakes commands queued before it.
 * Defaults: priority "critical", timeout_ms 1000, reason "".
 */
export const EmergencyStopCommand = tagged("EmergencyStopCommand", {
  layer_id: defaulted(Schema.NullOr(LayerId), () => null),
  seed_id: nullableSeedId,
  // Defaulted, not required: refusing a stop because it gives no reason would be the worse failure.
  reason,
  priority: priority("critical"),
  timeout_ms: timeoutMs(1_000),
});
export type EmergencyStopCommand = typeof EmergencyStopCommand.Type;

/**
 * esper's extension to docs/protocol.md: lifts a layer's emergency stop, so it accepts growth again.
 * The reference protocol can stop a layer but never restart it; only layer owners read control
 * streams, so a reader that does not know this type is never asked to.
 */
export const ResumeCommand = tagged("ResumeCommand", {
  layer_id: LayerId,
  reason,
  priority: priority("high"),
  timeout_ms: timeoutMs(1_000),
});
export type ResumeCommand = typeof ResumeCommand.Type;

// ---- events --------------------------------------------------------------------------------

const commandResultFields = {
  correlation_id: MessageId,
  layer_id: LayerId,
  seed_id: nullableSeedId,
  success: Schema.Boolean,
  error: nullableString,
  details: defaulted(AnyMap, emptyMap),
  execution_time_ms: NonNegative,
};

/**
 * Event: the one answer to a command, on its layer's event stream, correlated by `correlation_id`.
 * `success` and `code` ("ok", or why it was not applied: RESULT_CODES) say what happened; `error`
 * says why in words and `details` carries the numbers. A result from the reference implementation
 * (which predates codes) decodes with `code` derived from `success`: "ok" or "internal".
 */
export const CommandResult = tagged("CommandResult", {
  ...commandResultFields,
  code: defaulted(Schema.NullOr(ResultCodeSchema), () => null),
}).pipe(
  Schema.decodeTo(Schema.toType(tagged("CommandResult", { ...commandResultFields, code: ResultCodeSchema })), {
    decode: SchemaGetter.transform((r) => ({ ...r, code: r.code ?? (r.success ? ("ok" as const) : ("internal" as const)) })),
    encode: SchemaGetter.passthroughSupertype(),
  }),
);
export type CommandResult = typeof CommandResult.Type;

/** Event: a seed moved from `from_state` to `to_state`, with how long it took and who triggered it (user, system, policy). */
export const StateTransitionEvent = tagged("StateTransitionEvent", {
  layer_id: LayerId,
  seed_id: SeedId,
  from_state: SeedStateName,
  to_state: SeedStateName,
  reason,
  metrics_snapshot: defaulted(AnyMap, emptyMap),
  transition_duration_ms: NonNegative,
  triggered_by: TriggeredBy,
  success: Schema.Boolean,
});
export type StateTransitionEvent = typeof StateTransitionEvent.Type;

/** Event: a blueprint was updated, validated or rolled back on a seed, with the metrics it changed (`metrics_delta`). */
export const BlueprintEvent = tagged("BlueprintEvent", {
  layer_id: LayerId,
  seed_id: SeedId,
  blueprint_id: Schema.String,
  operation: BlueprintOperation,
  previous_blueprint_id: nullableString,
  metrics_delta: defaulted(NumberMap, emptyMap),
  success: Schema.Boolean,
  details: defaulted(AnyMap, emptyMap),
});
export type BlueprintEvent = typeof BlueprintEvent.Type;

/** Event: a seed's checkpoint was created, deleted or recovered, with its size in bytes. */
export const CheckpointEvent = tagged("CheckpointEvent", {
  layer_id: LayerId,
  seed_id: SeedId,
  checkpoint_id: Schema.String,
  operation: CheckpointOperation,
  checkpoint_size_bytes: Count,
  success: Schema.Boolean,
  error: nullableString,
});
export type CheckpointEvent = typeof CheckpointEvent.Type;

/**
 * Event: a metric of a layer (or one seed) degraded, improved, looks anomalous, passed its threshold or exhausted a resource;
 * `threshold` may be null, as the reference writes it.
 */
export const PerformanceAlert = tagged("PerformanceAlert", {
  layer_id: LayerId,
  seed_id: nullableSeedId,
  alert_type: AlertType,
  severity: Severity,
  metric_name: Schema.String,
  metric_value: Schema.Number,
  threshold: defaulted(Schema.NullOr(Schema.Number), () => null),
  details: defaulted(AnyMap, emptyMap),
  recommended_action: nullableString,
});
export type PerformanceAlert = typeof PerformanceAlert.Type;

// ---- telemetry -----------------------------------------------------------------------------

/** health_metrics is keyed by seed id in decimal (JSON object keys are strings). */
export const SEED_KEY_PATTERN = /^(0|[1-9][0-9]*)$/;
// A check on the map rather than a key schema: Effect drops keys that fail a key schema as excess,
// and a malformed seed id should be refused, not silently lost.
const HealthMetrics = Schema.Record(Schema.String, NumberMap).check(
  Schema.makeFilter((m: Readonly<Record<string, unknown>>) => Object.keys(m).every((k) => SEED_KEY_PATTERN.test(k)), {
    expected: "a map keyed by seed ids in decimal",
  }),
);

/**
 * Telemetry: one layer's health. `health_metrics` maps seed ids (decimal strings) to their metrics; a layer's owner takes
 * its epoch count from `performance_summary.epoch`; `telemetry_window` is [start, end].
 */
export const LayerHealthReport = tagged("LayerHealthReport", {
  layer_id: LayerId,
  total_seeds: Count,
  active_seeds: Count,
  health_metrics: defaulted(HealthMetrics, emptyMap),
  performance_summary: defaulted(AnyMap, emptyMap),
  telemetry_window: Schema.Tuple([Schema.Finite, Schema.Finite]),
  anomalies: defaulted(Schema.Array(Schema.Unknown), emptyList),
});
export type LayerHealthReport = typeof LayerHealthReport.Type;

/** A blueprint id as a string; the reference writes integers, read here as their decimal text. */
const BlueprintIdText = Schema.Union([Schema.String, Schema.Int]).pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transform((id: string | number) => String(id)),
    encode: SchemaGetter.passthroughSupertype(),
  }),
);

/** Telemetry: one seed's state and metrics; an integer `blueprint_id` (as the reference writes it) is read as its decimal string. */
export const SeedMetricsSnapshot = tagged("SeedMetricsSnapshot", {
  layer_id: LayerId,
  seed_id: SeedId,
  lifecycle_state: SeedStateName,
  blueprint_id: defaulted(Schema.NullOr(BlueprintIdText), () => null),
  metrics: defaulted(NumberMap, emptyMap),
  error_count: defaulted(Count, () => 0),
  warning_count: defaulted(Count, () => 0),
  checkpoint_id: nullableString,
  compute_stats: defaulted(NumberMap, emptyMap),
  grafting_info: defaulted(AnyMap, emptyMap),
});
export type SeedMetricsSnapshot = typeof SeedMetricsSnapshot.Type;

/** One message of a TelemetryBatch: a LayerHealthReport or a SeedMetricsSnapshot. */
export const TelemetryRecord = Schema.Union([LayerHealthReport, SeedMetricsSnapshot]);
export type TelemetryRecord = typeof TelemetryRecord.Type;

/** Telemetry: several LayerHealthReports and SeedMetricsSnapshots in one entry; build it with telemetryBatch, which fills batch_size. */
export const TelemetryBatch = tagged("TelemetryBatch", {
  messages: Schema.Array(TelemetryRecord),
  compression: nullableString,
  batch_size: Count,
});
export type TelemetryBatch = typeof TelemetryBatch.Type;

// ---- coordination --------------------------------------------------------------------------

/** Coordination: a service says what it is (`service_type`, `capabilities`) and where to reach it. */
export const ServiceAnnouncement = tagged("ServiceAnnouncement", {
  service_type: Schema.String,
  service_id: Schema.String,
  capabilities: defaulted(Schema.Array(Schema.String), emptyList),
  endpoints: defaulted(AnyMap, emptyMap),
  health_check_endpoint: nullableString,
});
export type ServiceAnnouncement = typeof ServiceAnnouncement.Type;

/** Coordination: a service's periodic sign of life, with its status (healthy, degraded, unhealthy), uptime and load. */
export const Heartbeat = tagged("Heartbeat", {
  service_id: Schema.String,
  uptime_seconds: NonNegative,
  metrics: defaulted(NumberMap, emptyMap),
  status: ServiceStatus,
  /** One figure, or the reference's map of them (cpu, memory...). */
  load: Schema.Union([Schema.Finite, NumberMap]),
});
export type Heartbeat = typeof Heartbeat.Type;

/** Coordination: asks for a lock, an election or a barrier on `resource_id`; `timeout_ms` is required. */
export const CoordinationRequest = tagged("CoordinationRequest", {
  operation: CoordinationOperation,
  resource_id: Schema.String,
  requester_id: Schema.String,
  timeout_ms: NonNegative,
  parameters: defaulted(AnyMap, emptyMap),
});
export type CoordinationRequest = typeof CoordinationRequest.Type;

/** Coordination: answers a CoordinationRequest (`request_id`), granted or not, with the current holder; `wait_time_ms` may be null. */
export const CoordinationResponse = tagged("CoordinationResponse", {
  request_id: Schema.String,
  granted: Schema.Boolean,
  holder_id: nullableString,
  wait_time_ms: defaulted(Schema.NullOr(NonNegative), () => null),
  details: defaulted(AnyMap, emptyMap),
});
export type CoordinationResponse = typeof CoordinationResponse.Type;

// ---- unions --------------------------------------------------------------------------------

/** Every message schema by its `message_type`, the one dispatch table readers use. */
export const MESSAGE_SCHEMAS = {
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
  TelemetryBatch,
  ServiceAnnouncement,
  Heartbeat,
  CoordinationRequest,
  CoordinationResponse,
} as const;

/** The `message_type` of every message esper reads and writes: docs/protocol.md's sixteen and esper's ResumeCommand. */
export type MessageType = keyof typeof MESSAGE_SCHEMAS;
/** Every MessageType, in the order of MESSAGE_SCHEMAS. */
export const MESSAGE_TYPES = Object.keys(MESSAGE_SCHEMAS) as readonly MessageType[];
/** Whether `u` is the name of a message type this reader knows (e.g. an entry's `type` field). */
export const isMessageType = (u: unknown): u is MessageType =>
  typeof u === "string" && Object.prototype.hasOwnProperty.call(MESSAGE_SCHEMAS, u);

/** The decoded message of type T (defaults filled in), e.g. `MessageOf<"Heartbeat">`. */
export type MessageOf<T extends MessageType> = (typeof MESSAGE_SCHEMAS)[T]["Type"];

/**
 * Any message, as one Schema (a union of all of them). To read untrusted input, prefer decodeMessage: it dispatches on
 * `message_type`, checks the version and DECODE_LIMITS first, and returns a ProtocolError instead of a SchemaError.
 */
export const Message = Schema.Union(Object.values(MESSAGE_SCHEMAS));
export type Message = MessageOf<MessageType>;

/** The control-stream commands: docs/protocol.md's four, and esper's ResumeCommand. */
export type Command = LifecycleTransitionCommand | BlueprintUpdateCommand | BatchCommand | EmergencyStopCommand | ResumeCommand;
/** What a layer publishes on its event stream. */
export type Event = CommandResult | StateTransitionEvent | BlueprintEvent | CheckpointEvent | PerformanceAlert;
/** What goes on a layer's telemetry stream (a trainer's reports). */
export type Telemetry = LayerHealthReport | SeedMetricsSnapshot | TelemetryBatch;
/** What services publish on the coordination stream. */
export type Coordination = ServiceAnnouncement | Heartbeat | CoordinationRequest | CoordinationResponse;

export const COMMAND_TYPES: ReadonlySet<MessageType> = new Set([
  "LifecycleTransitionCommand",
  "BlueprintUpdateCommand",
  "BatchCommand",
  "EmergencyStopCommand",
  "ResumeCommand",
]);
/** Whether a decoded message is a control-stream command (see Command). */
export const isCommand = (m: Message): m is Command => COMMAND_TYPES.has(m.message_type);

/** The layer a command addresses; null for an emergency stop of every layer. */
export const commandLayer = (c: Command): string | null =>
  c.message_type === "BatchCommand" ? c.commands[0]!.layer_id : c.layer_id;
