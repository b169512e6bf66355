import { SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";
import { LAYER_ID_PATTERN, VERSION_PATTERN } from "./fields.ts";
import { MAX_MESSAGE_ID_LENGTH } from "./limits.ts";
import { SEED_KEY_PATTERN, type LayerHealthReport, type SeedMetricsSnapshot, type TelemetryBatch, type TelemetryRecord } from "./messages.ts";

/**
 * Hand-written decoders for the three telemetry messages, for the telemetry path's budget
 * (>= 1M records/s end to end). Effect Schema decoding measured ~14 µs per SeedMetricsSnapshot
 * and ~4 µs per health_metrics entry; these measured ~0.3-0.5 µs and ~0.2 µs. The speed test in
 * test/protocol/telemetry-records.test.ts guards against falling back to the slow path.
 *
 * The Schemas in messages.ts stay the definition: these decoders accept exactly what the Schema
 * accepts and produce the same value (a property test compares the two on random input), with one
 * deliberate difference: where a map is expected they accept only plain objects, so a msgpack
 * `bin` or timestamp is refused here while the Schema would read it as a map.
 * Valid maps are returned as they came (no copy): the decoded message owns the parsed input.
 */

export interface Rejection {
  /** Where, e.g. `messages[3].seed_id`; "" for the message itself. */
  readonly path: string;
  readonly expected: string;
}

/**
 * Thrown inside, caught at the entry point: keeps the success path free of result checks.
 * Paths are built only on the way out (`within`), never on the success path.
 */
class Rejected {
  constructor(readonly rejection: Rejection) {}
}
const reject = (path: string, expected: string): never => {
  throw new Rejected({ path, expected });
};
const within = (prefix: string, e: unknown): never => {
  if (!(e instanceof Rejected)) throw e;
  const { path, expected } = e.rejection;
  throw new Rejected({ path: path === "" ? prefix : path.startsWith("[") ? prefix + path : `${prefix}.${path}`, expected });
};

type WireMap = Record<string, unknown>;
const isPlainMap = (u: unknown): u is WireMap => {
  if (typeof u !== "object" || u === null) return false;
  const proto = Object.getPrototypeOf(u);
  return proto === Object.prototype || proto === null;
};
const map = (u: unknown, field: string): WireMap => (isPlainMap(u) ? u : reject(field, "a map"));
const str = (u: unknown, field: string): string => (typeof u === "string" ? u : reject(field, "a string"));
const finite = (u: unknown, field: string): number => (typeof u === "number" && Number.isFinite(u) ? u : reject(field, "a finite number"));
const natural = (u: unknown, field: string): number =>
  typeof u === "number" && Number.isSafeInteger(u) && u >= 0 ? u : reject(field, "a non-negative integer");
const absent = (u: unknown): u is null | undefined => u === undefined || u === null;

const nullableString = (u: unknown, field: string): string | null => (absent(u) ? null : str(u, field));
const count = (u: unknown, field: string): number => (absent(u) ? 0 : natural(u, field));
const anyMap = (u: unknown, field: string): WireMap => (absent(u) ? {} : map(u, field));
const numberMap = (u: unknown, field: string): Record<string, number> => {
  if (absent(u)) return {};
  const m = map(u, field);
  for (const k in m) if (typeof m[k] !== "number") reject(`${field}.${k}`, "a number");
  return m as Record<string, number>;
};

// Records of one batch share their layer id: remember the last valid one.
let lastLayerId = "";
const layerId = (u: unknown): string => {
  if (u === lastLayerId) return u;
  if (typeof u !== "string" || !LAYER_ID_PATTERN.test(u)) return reject("layer_id", "a layer id matching ^[A-Za-z0-9_-]{1,64}$");
  lastLayerId = u;
  return u;
};
const messageId = (u: unknown): string =>
  typeof u === "string" && u.length >= 1 && u.length <= MAX_MESSAGE_ID_LENGTH ? u : reject("message_id", `a string of 1 to ${MAX_MESSAGE_ID_LENGTH} characters`);
const version = (u: unknown): string =>
  u === "1.0" || (typeof u === "string" && VERSION_PATTERN.test(u)) ? u : reject("version", 'protocol version "1.0"');

const STATES: ReadonlySet<string> = new Set(SEED_STATES);
const seedState = (u: unknown, field: string): SeedState => {
  if (typeof u === "string") {
    if (STATES.has(u)) return u as SeedState;
    const upper = u.toUpperCase();
    if (STATES.has(upper)) return upper as SeedState;
  }
  return reject(field, `a lifecycle state (${SEED_STATES.join("|")})`);
};

const expectType = (m: WireMap, type: string): void => {
  if (m.message_type !== type) reject("message_type", `"${type}"`);
};

/** The optional common fields go on only when present and not null, as the Schema decodes them. */
const withOptionals = <T extends object>(out: T, m: WireMap): T => {
  if (!absent(m.correlation_id)) (out as WireMap).correlation_id = str(m.correlation_id, "correlation_id");
  if (!absent(m.metadata)) (out as WireMap).metadata = map(m.metadata, "metadata");
  return out;
};

const seedMetricsSnapshot = (u: unknown): SeedMetricsSnapshot => {
  const m = map(u, "");
  expectType(m, "SeedMetricsSnapshot");
  return withOptionals(
    {
      message_type: "SeedMetricsSnapshot" as const,
      message_id: messageId(m.message_id),
      timestamp: finite(m.timestamp, "timestamp"),
      source: str(m.source, "source"),
      version: version(m.version),
      layer_id: layerId(m.layer_id),
      seed_id: natural(m.seed_id, "seed_id"),
      lifecycle_state: seedState(m.lifecycle_state, "lifecycle_state"),
      blueprint_id: nullableString(m.blueprint_id, "blueprint_id"),
      metrics: numberMap(m.metrics, "metrics"),
      error_count: count(m.error_count, "error_count"),
      warning_count: count(m.warning_count, "warning_count"),
      checkpoint_id: nullableString(m.checkpoint_id, "checkpoint_id"),
      compute_stats: numberMap(m.compute_stats, "compute_stats"),
      grafting_info: anyMap(m.grafting_info, "grafting_info"),
    },
    m,
  );
};

const healthMetrics = (u: unknown): Record<string, Record<string, number>> => {
  if (absent(u)) return {};
  const m = map(u, "health_metrics");
  for (const seed in m) {
    if (!SEED_KEY_PATTERN.test(seed)) reject(`health_metrics.${seed}`, "a seed id in decimal as key");
    const metrics = m[seed];
    if (!isPlainMap(metrics)) return reject(`health_metrics.${seed}`, "a map");
    for (const k in metrics) if (typeof metrics[k] !== "number") reject(`health_metrics.${seed}.${k}`, "a number");
  }
  return m as Record<string, Record<string, number>>;
};

const telemetryWindow = (u: unknown): readonly [number, number] => {
  if (!Array.isArray(u) || u.length !== 2) return reject("telemetry_window", "[start, end]");
  return [finite(u[0], "telemetry_window[0]"), finite(u[1], "telemetry_window[1]")];
};

const layerHealthReport = (u: unknown): LayerHealthReport => {
  const m = map(u, "");
  expectType(m, "LayerHealthReport");
  const anomalies = m.anomalies;
  if (!absent(anomalies) && !Array.isArray(anomalies)) reject("anomalies", "a list");
  return withOptionals(
    {
      message_type: "LayerHealthReport" as const,
      message_id: messageId(m.message_id),
      timestamp: finite(m.timestamp, "timestamp"),
      source: str(m.source, "source"),
      version: version(m.version),
      layer_id: layerId(m.layer_id),
      total_seeds: natural(m.total_seeds, "total_seeds"),
      active_seeds: natural(m.active_seeds, "active_seeds"),
      health_metrics: healthMetrics(m.health_metrics),
      performance_summary: anyMap(m.performance_summary, "performance_summary"),
      telemetry_window: telemetryWindow(m.telemetry_window),
      anomalies: absent(anomalies) ? [] : (anomalies as unknown[]),
    },
    m,
  );
};

const telemetryRecord = (u: unknown): TelemetryRecord => {
  const type = isPlainMap(u) ? u.message_type : undefined;
  if (type === "SeedMetricsSnapshot") return seedMetricsSnapshot(u);
  if (type === "LayerHealthReport") return layerHealthReport(u);
  return reject("message_type", '"SeedMetricsSnapshot" or "LayerHealthReport"');
};

const telemetryBatch = (u: unknown): TelemetryBatch => {
  const m = map(u, "");
  expectType(m, "TelemetryBatch");
  const records = m.messages;
  if (!Array.isArray(records)) return reject("messages", "a list");
  const messages = new Array<TelemetryRecord>(records.length);
  let i = 0;
  try {
    for (; i < records.length; i++) messages[i] = telemetryRecord(records[i]);
  } catch (e) {
    within(`messages[${i}]`, e);
  }
  return withOptionals(
    {
      message_type: "TelemetryBatch" as const,
      message_id: messageId(m.message_id),
      timestamp: finite(m.timestamp, "timestamp"),
      source: str(m.source, "source"),
      version: version(m.version),
      messages,
      compression: nullableString(m.compression, "compression"),
      batch_size: natural(m.batch_size, "batch_size"),
    },
    m,
  );
};

export const TELEMETRY_DECODERS = {
  SeedMetricsSnapshot: seedMetricsSnapshot,
  LayerHealthReport: layerHealthReport,
  TelemetryBatch: telemetryBatch,
} as const;
export type TelemetryType = keyof typeof TELEMETRY_DECODERS;

export const isTelemetryType = (t: string): t is TelemetryType => Object.prototype.hasOwnProperty.call(TELEMETRY_DECODERS, t);

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly rejection: Rejection };

/** Decodes one telemetry message of the given type; never throws. */
export const decodeTelemetry = <T extends TelemetryType>(type: T, u: unknown): Decoded<ReturnType<(typeof TELEMETRY_DECODERS)[T]>> => {
  try {
    return { ok: true, value: TELEMETRY_DECODERS[type](u) as ReturnType<(typeof TELEMETRY_DECODERS)[T]> };
  } catch (e) {
    if (e instanceof Rejected) return { ok: false, rejection: e.rejection };
    // A getter or proxy in the input could throw anything: still an answer, never an exception.
    return { ok: false, rejection: { path: "", expected: `a decodable message (${String(e)})` } };
  }
};
