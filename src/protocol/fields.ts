import { Option, Schema, SchemaGetter, SchemaTransformation } from "effect";
import { GRAFTING_STRATEGIES, RESULT_CODES, SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";
import { GRAFTING_STRATEGY_ALIASES, type GraftingStrategy as Strategy } from "../../machines/lifecycle.ts";
import { MAX_MESSAGE_ID_LENGTH, MAX_SOURCE_LENGTH } from "./limits.ts";

/**
 * The field vocabulary of the wire protocol (docs/protocol.md "Messages"): ids, enums, and the two
 * field shapes every message uses, "optional" (absent or null, decoded as absent) and
 * "defaulted" (absent or null, decoded as the default).
 */

export const LAYER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const LayerId = Schema.String.check(Schema.isPattern(LAYER_ID_PATTERN, { expected: "a layer id matching ^[A-Za-z0-9_-]{1,64}$" }));
/** Upper bound (num_seeds) is the layer's to check: the wire does not know it. */
export const SeedId = Schema.Natural;
/** Unique per message and the dedupe key of commands; any non-empty string up to 128 chars (a UUID when we write it). */
export const MessageId = Schema.String.check(Schema.isBetweenLength(1, MAX_MESSAGE_ID_LENGTH));
/** Seconds since the epoch, as a float. */
export const Timestamp = Schema.Finite;
export const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0));
export const Count = Schema.Natural;

/**
 * Major version 1, any minor ("1", "1.0", "1.3"): a minor version may only add fields, which
 * readers ignore, so refusing it would split a deployment for nothing. Other majors are refused.
 */
export const PROTOCOL_VERSION = "1.0";
export const VERSION_PATTERN = /^1(\.[0-9]+)?$/;
export const Version = Schema.String.check(Schema.isPattern(VERSION_PATTERN, { expected: 'protocol version "1.0"' }));

/** Lifecycle states travel upper-case but are matched case-insensitively (docs/protocol.md). */
export const SeedStateName = Schema.String.pipe(
  Schema.decodeTo(Schema.Literals(SEED_STATES), {
    // The cast is checked: decodeTo validates the upper-cased string against the literals.
    decode: SchemaGetter.transform((s: string) => s.toUpperCase() as SeedState),
    encode: SchemaGetter.passthroughSupertype(),
  }),
);

export const PRIORITIES = ["low", "normal", "high", "critical"] as const;
export type Priority = (typeof PRIORITIES)[number];
export const Priority = Schema.Literals(PRIORITIES);

export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];
export const Severity = Schema.Literals(SEVERITIES);

export const ALERT_TYPES = ["degradation", "improvement", "anomaly", "threshold_exceeded", "resource_exhaustion"] as const;
export type AlertType = (typeof ALERT_TYPES)[number];
export const AlertType = Schema.Literals(ALERT_TYPES);

/**
 * esper's five strategy names, matched case-insensitively; the names the reference message bus
 * uses (`immediate`, `gradual`, `conditional`, `adaptive`, `safe`) are read as the esper
 * strategy closest to them (GRAFTING_STRATEGY_ALIASES) and decoded as that name.
 */
export const GraftingStrategy = Schema.String.pipe(
  Schema.decodeTo(Schema.Literals(GRAFTING_STRATEGIES), {
    // The cast is checked: decodeTo validates the mapped name against the literals.
    decode: SchemaGetter.transform((s: string) => {
      const name = s.toLowerCase();
      return (GRAFTING_STRATEGY_ALIASES[name] ?? name) as Strategy;
    }),
    encode: SchemaGetter.passthroughSupertype(),
  }),
);
export const ResultCodeSchema = Schema.Literals(RESULT_CODES);

export const TRIGGERS = ["user", "system", "policy"] as const;
export type TriggeredBy = (typeof TRIGGERS)[number];
export const TriggeredBy = Schema.Literals(TRIGGERS);

export const BLUEPRINT_OPERATIONS = ["updated", "validated", "rolled_back"] as const;
export type BlueprintOperation = (typeof BLUEPRINT_OPERATIONS)[number];
export const BlueprintOperation = Schema.Literals(BLUEPRINT_OPERATIONS);

export const CHECKPOINT_OPERATIONS = ["created", "deleted", "recovered"] as const;
export type CheckpointOperation = (typeof CHECKPOINT_OPERATIONS)[number];
export const CheckpointOperation = Schema.Literals(CHECKPOINT_OPERATIONS);

export const SERVICE_STATUSES = ["healthy", "degraded", "unhealthy"] as const;
export type ServiceStatus = (typeof SERVICE_STATUSES)[number];
export const ServiceStatus = Schema.Literals(SERVICE_STATUSES);

export const COORDINATION_OPERATIONS = ["lock", "election", "barrier"] as const;
export type CoordinationOperation = (typeof COORDINATION_OPERATIONS)[number];
export const CoordinationOperation = Schema.Literals(COORDINATION_OPERATIONS);

/** A free-form map (parameters, details, metadata...). */
export const AnyMap = Schema.Record(Schema.String, Schema.Unknown);
/** metric name -> value; NaN and infinities are allowed, trainers do produce them. */
export const NumberMap = Schema.Record(Schema.String, Schema.Number);

// undefined counts as absent: a JS writer without encodeUndefinedAsNil sends msgpack's undefined extension.
const dropNull = <T>(o: Option.Option<T | null | undefined>): Option.Option<T> =>
  Option.filter(o, (v): v is T => v !== null && v !== undefined);

/** A field that may be absent or null on the wire; decoded, a null becomes an absent key. */
export const optionalNullable = <S extends Schema.Top>(schema: S) =>
  Schema.optional(Schema.NullOr(schema)).pipe(
    Schema.decodeTo(
      Schema.optionalKey(Schema.toType(schema)),
      SchemaTransformation.transformOptional({ decode: dropNull<S["Type"]>, encode: (o) => o }),
    ),
  );

/**
 * A field that may be absent or null on the wire and decodes to `fallback()` then. A thunk, so
 * every decoded message owns its own `{}`/`[]` instead of sharing one.
 * For a nullable field whose null means something (seed_id null = every seed), pass
 * `Schema.NullOr(x)` and `() => null`: null and absent then both decode to null.
 */
export const defaulted = <S extends Schema.Top>(schema: S, fallback: () => S["Type"]) =>
  Schema.optional(Schema.NullOr(schema)).pipe(
    Schema.decodeTo(
      Schema.toType(schema),
      SchemaTransformation.transformOptional({
        decode: (o: Option.Option<S["Type"] | null | undefined>) => Option.some(Option.getOrElse(dropNull(o), fallback)),
        encode: (o) => o,
      }),
    ),
  );

export const emptyMap = (): Record<string, never> => ({});
export const emptyList = (): never[] => [];

/** Who wrote a message. Bounded: a layer keeps a rate counter per source. */
export const Source = Schema.String.check(Schema.isMaxLength(MAX_SOURCE_LENGTH));

/** Fields every message carries (docs/protocol.md "Messages"); `message_type` is added per message. */
export const commonFields = {
  message_id: MessageId,
  timestamp: Timestamp,
  source: Source,
  version: Version,
  correlation_id: optionalNullable(Schema.String),
  metadata: optionalNullable(AnyMap),
};
