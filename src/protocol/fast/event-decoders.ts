import { RESULT_CODES, type ResultCode, SEED_STATES, type SeedState } from "../../../machines/lifecycle.ts";
import { LAYER_ID_PATTERN, TRIGGERS, VERSION_PATTERN } from "../fields.ts";
import { MAX_MESSAGE_ID_LENGTH, MAX_SOURCE_LENGTH } from "../limits.ts";
import type { CommandResult, StateTransitionEvent } from "../messages.ts";
import { absent, isPlainMap, type WireMap } from "./wire-map.ts";

/**
 * Hand-written decoders for the two events every client and controller reads most: the
 * CommandResult of each command and the StateTransitionEvent of each seed transition. Their
 * Schemas measured ~5 µs and ~3 µs an event; these well under 1 µs.
 *
 * Fast paths, as in command-decoder.ts, not second definitions: each returns the decoded event
 * when the input is plainly valid, and `undefined` for anything else (invalid, or merely unusual,
 * such as a msgpack `bin` where a map belongs). decodeMessage then asks the Schema, which gives
 * the verdict and error text for those. A property test (test/protocol/fast-event-decoders.test.ts) pins
 * them to the Schemas: on plain input they accept exactly what the Schema accepts, with the same
 * value. Valid maps (details, metrics_snapshot, metadata) are returned as they came, not copied:
 * the decoded message owns the parsed input.
 */

const isMessageId = (u: unknown): u is string => typeof u === "string" && u.length >= 1 && u.length <= MAX_MESSAGE_ID_LENGTH;
const isSeedId = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0;
const isNonNegative = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u) && u >= 0;

const STATES: ReadonlySet<string> = new Set(SEED_STATES);
const RESULT_CODE_SET: ReadonlySet<string> = new Set(RESULT_CODES);
const TRIGGER_SET: ReadonlySet<string> = new Set(TRIGGERS);

/** SeedStateName's decoding: matched case-insensitively, decoded upper-case. */
const seedState = (u: unknown): SeedState | undefined => {
  if (typeof u !== "string") return undefined;
  if (STATES.has(u)) return u as SeedState;
  const upper = u.toUpperCase();
  return STATES.has(upper) ? (upper as SeedState) : undefined;
};

/**
 * The common fields both events check alike. correlation_id is left to each: CommandResult
 * requires it as a message id (it names the command), StateTransitionEvent takes any string or none.
 */
const hasCommonFields = (u: WireMap): boolean => {
  if (!isMessageId(u.message_id)) return false;
  const timestamp = u.timestamp;
  if (typeof timestamp !== "number" || !Number.isFinite(timestamp)) return false;
  if (typeof u.source !== "string" || u.source.length > MAX_SOURCE_LENGTH) return false;
  const version = u.version;
  if (version !== "1.0" && (typeof version !== "string" || !VERSION_PATTERN.test(version))) return false;
  const metadata = u.metadata;
  return absent(metadata) || isPlainMap(metadata);
};

/** The decoded result, or `undefined` when the Schema must decide (invalid or unusual input). */
export const decodeCommandResult = (u: unknown): CommandResult | undefined => {
  if (!isPlainMap(u)) return undefined;
  if (u.message_type !== "CommandResult" || !hasCommonFields(u)) return undefined;
  const correlationId = u.correlation_id;
  if (!isMessageId(correlationId)) return undefined;

  const layerId = u.layer_id;
  if (typeof layerId !== "string" || !LAYER_ID_PATTERN.test(layerId)) return undefined;
  const seedId = u.seed_id;
  if (!absent(seedId) && !isSeedId(seedId)) return undefined;
  const success = u.success;
  if (typeof success !== "boolean") return undefined;
  const error = u.error;
  if (!absent(error) && typeof error !== "string") return undefined;
  const details = u.details;
  if (!absent(details) && !isPlainMap(details)) return undefined;
  const executionTimeMs = u.execution_time_ms;
  if (!isNonNegative(executionTimeMs)) return undefined;
  const code = u.code;
  if (!absent(code) && (typeof code !== "string" || !RESULT_CODE_SET.has(code))) return undefined;

  // Keys in the Schema's order: common fields (metadata only when present), the result's, code last.
  const out: WireMap = { message_type: "CommandResult", message_id: u.message_id, timestamp: u.timestamp, source: u.source, version: u.version, correlation_id: correlationId };
  const metadata = u.metadata;
  if (!absent(metadata)) out.metadata = metadata;
  out.layer_id = layerId;
  out.seed_id = absent(seedId) ? null : seedId;
  out.success = success;
  out.error = absent(error) ? null : error;
  out.details = absent(details) ? {} : details;
  out.execution_time_ms = executionTimeMs;
  // A reference-implementation result predates codes: the Schema derives one from success.
  out.code = absent(code) ? ((success ? "ok" : "internal") satisfies ResultCode) : code;
  return out as unknown as CommandResult;
};

/** The decoded event, or `undefined` when the Schema must decide (invalid or unusual input). */
export const decodeStateTransitionEvent = (u: unknown): StateTransitionEvent | undefined => {
  if (!isPlainMap(u)) return undefined;
  if (u.message_type !== "StateTransitionEvent" || !hasCommonFields(u)) return undefined;
  const correlationId = u.correlation_id;
  if (!absent(correlationId) && typeof correlationId !== "string") return undefined;

  const layerId = u.layer_id;
  if (typeof layerId !== "string" || !LAYER_ID_PATTERN.test(layerId)) return undefined;
  // Unlike CommandResult's, not nullable: a transition is always one seed's.
  const seedId = u.seed_id;
  if (!isSeedId(seedId)) return undefined;
  const fromState = seedState(u.from_state);
  if (fromState === undefined) return undefined;
  const toState = seedState(u.to_state);
  if (toState === undefined) return undefined;
  const reason = u.reason;
  if (!absent(reason) && typeof reason !== "string") return undefined;
  const metricsSnapshot = u.metrics_snapshot;
  if (!absent(metricsSnapshot) && !isPlainMap(metricsSnapshot)) return undefined;
  const transitionDurationMs = u.transition_duration_ms;
  if (!isNonNegative(transitionDurationMs)) return undefined;
  const triggeredBy = u.triggered_by;
  if (typeof triggeredBy !== "string" || !TRIGGER_SET.has(triggeredBy)) return undefined;
  const success = u.success;
  if (typeof success !== "boolean") return undefined;

  // Keys in the Schema's order (common fields, optionals only when present, then the event's).
  const out: WireMap = { message_type: "StateTransitionEvent", message_id: u.message_id, timestamp: u.timestamp, source: u.source, version: u.version };
  if (!absent(correlationId)) out.correlation_id = correlationId;
  const metadata = u.metadata;
  if (!absent(metadata)) out.metadata = metadata;
  out.layer_id = layerId;
  out.seed_id = seedId;
  out.from_state = fromState;
  out.to_state = toState;
  out.reason = absent(reason) ? "" : reason;
  out.metrics_snapshot = absent(metricsSnapshot) ? {} : metricsSnapshot;
  out.transition_duration_ms = transitionDurationMs;
  out.triggered_by = triggeredBy;
  out.success = success;
  return out as unknown as StateTransitionEvent;
};
