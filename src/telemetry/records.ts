import { DECODE_LIMITS } from "../protocol/limits.ts";
import { SEED_KEY_PATTERN } from "../protocol/messages.ts";

/**
 * What the data plane hands the publisher: one window of one layer's per-seed metrics, in
 * whichever form it has them. A record is one seed's metrics of one window.
 *
 * - `SeedRows`: the telemetry tensor as it comes out of the backend, row-major
 *   `[seeds x columns]` (kasmina's TelemetrySink and SeedMetricsBatch). The fast form: no
 *   object is built per seed.
 * - a Map from seed id, or an object keyed by seed id in decimal, of `{ metric: value }`.
 *
 * NaN values are left out (a metric that does not apply to the seed's state, telemetry.ts).
 * The publisher encodes a window before `publishWindow` returns and keeps no reference to it.
 */
export interface SeedRows {
  /** Metric names, one per column. */
  readonly columns: readonly string[];
  /** `rows[seed * columns.length + column]`. */
  readonly rows: Float32Array | Float64Array;
  /** Seed id of each row; default the row index. */
  readonly seedIds?: ArrayLike<number>;
}

export type SeedRecords =
  | SeedRows
  | ReadonlyMap<number, Readonly<Record<string, number>>>
  | Readonly<Record<string, Readonly<Record<string, number>>>>;

/** What a LayerHealthReport says about its window, besides the seeds' metrics. */
export interface WindowInfo {
  /** `telemetry_window`: [start, end], e.g. the first and last training step the window covers. */
  readonly window: readonly [number, number];
  /** The training step the metrics were sampled on; written as `performance_summary.step`. */
  readonly step?: number;
  /** `total_seeds`: seeds of the layer. Default: the seeds in this window. */
  readonly totalSeeds?: number;
  /** `active_seeds`: seeds of the layer not DORMANT, as the data plane counts them. Default 0. */
  readonly activeSeeds?: number;
  /**
   * `performance_summary`, e.g. `{ epoch, loss }`: a layer owner reads `epoch` as the epoch
   * tick (docs/protocol.md), so set it only on the window that ends an epoch.
   */
  readonly performanceSummary?: Readonly<Record<string, unknown>>;
  readonly anomalies?: readonly unknown[];
}

/** A window's report fields, checked, defaults filled in: what either path writes. */
export interface ReportWindow {
  readonly layerId: string;
  readonly window: readonly [number, number];
  readonly totalSeeds: number;
  readonly activeSeeds: number;
  /** `step` included. */
  readonly performanceSummary: Readonly<Record<string, unknown>>;
  readonly anomalies: readonly unknown[];
}

type Metrics = Readonly<Record<string, number>>;

/**
 * A window's records, checked: every seed id and value is one a reader accepts, so the writers
 * need not look again. Rows are kept as they came; the other forms as a list of seeds.
 */
export type CheckedRecords =
  | { readonly kind: "rows"; readonly count: number; readonly columns: readonly string[]; readonly rows: Float32Array | Float64Array; readonly seedIds: ArrayLike<number> | undefined }
  | { readonly kind: "map"; readonly count: number; readonly seeds: readonly number[]; readonly metrics: readonly Metrics[] }
  | { readonly kind: "object"; readonly count: number; readonly seeds: readonly string[]; readonly metrics: readonly Metrics[] };

const count = (u: unknown, name: string): number => {
  if (typeof u !== "number" || !Number.isSafeInteger(u) || u < 0) throw new RangeError(`${name} must be a non-negative integer, got ${String(u)}`);
  return u;
};

/** Throws a RangeError on a window no reader would accept. */
export const checkWindow = (layerId: string, info: WindowInfo, seeds: number): ReportWindow => {
  const [start, end] = info.window;
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw new RangeError(`telemetry_window must be two finite numbers, got [${start}, ${end}]`);
  return {
    layerId,
    window: [start, end],
    totalSeeds: count(info.totalSeeds ?? seeds, "totalSeeds"),
    activeSeeds: count(info.activeSeeds ?? 0, "activeSeeds"),
    performanceSummary: info.step === undefined ? (info.performanceSummary ?? {}) : { ...info.performanceSummary, step: info.step },
    anomalies: info.anomalies ?? [],
  };
};

const isSeedRows = (r: SeedRecords): r is SeedRows =>
  !(r instanceof Map) && ArrayBuffer.isView((r as SeedRows).rows) && Array.isArray((r as SeedRows).columns);

const isSeedId = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

const { maxEntries, maxStringLength } = DECODE_LIMITS;

const checkName = (name: string): void => {
  if (name.length > maxStringLength) throw new RangeError(`a metric name of ${name.length} characters is over the limit of ${maxStringLength}`);
};

const checkMetrics = (metrics: unknown, seed: string): Metrics => {
  if (typeof metrics !== "object" || metrics === null) throw new TypeError(`metrics of seed ${seed} must be a map of numbers`);
  let n = 0;
  for (const k in metrics) {
    const v = (metrics as Record<string, unknown>)[k];
    if (typeof v !== "number") throw new TypeError(`metric ${k} of seed ${seed} is ${typeof v}, not a number`);
    checkName(k);
    n++;
  }
  if (n > maxEntries) throw new RangeError(`seed ${seed} has ${n} metrics, over the limit of ${maxEntries}`);
  return metrics as Metrics;
};

/**
 * Throws (RangeError/TypeError) on records no reader would accept (DECODE_LIMITS included): a
 * programming error of the caller. Checked before anything is written, so a refused window
 * leaves no half-written report.
 */
export const checkRecords = (records: SeedRecords): CheckedRecords => {
  if (isSeedRows(records)) {
    const { columns, rows, seedIds } = records;
    const nc = columns.length;
    if (nc > maxEntries) throw new RangeError(`telemetry rows have ${nc} columns, over the limit of ${maxEntries} metrics`);
    columns.forEach(checkName);
    if (nc === 0 ? rows.length !== 0 : rows.length % nc !== 0) {
      throw new RangeError(`telemetry rows hold ${rows.length} values, not a multiple of its ${nc} columns`);
    }
    const n = nc === 0 ? (seedIds?.length ?? 0) : rows.length / nc;
    if (seedIds !== undefined) {
      if (seedIds.length !== n) throw new RangeError(`telemetry rows hold ${n} seeds but seedIds names ${seedIds.length}`);
      for (let i = 0; i < n; i++) if (!isSeedId(seedIds[i])) throw new RangeError(`seedIds[${i}] = ${seedIds[i]} is not a seed id (a non-negative integer)`);
    }
    return { kind: "rows", count: n, columns, rows, seedIds };
  }
  if (records instanceof Map) {
    const seeds = [...(records as ReadonlyMap<number, Metrics>).keys()];
    for (const s of seeds) if (!isSeedId(s)) throw new RangeError(`seed id ${String(s)} is not a non-negative integer`);
    const metrics = seeds.map((s) => checkMetrics(records.get(s), String(s)));
    return { kind: "map", count: seeds.length, seeds, metrics };
  }
  const byKey = records as Readonly<Record<string, Metrics>>;
  const seeds = Object.keys(byKey);
  for (const s of seeds) if (!SEED_KEY_PATTERN.test(s)) throw new RangeError(`seed key ${JSON.stringify(s)} is not a seed id in decimal`);
  const metrics = seeds.map((s) => checkMetrics(byKey[s], s));
  return { kind: "object", count: seeds.length, seeds, metrics };
};

/** `__proto__` is a metric name like any other: an own property, as a codec makes it, not the prototype. */
const setMetric = (out: Record<string, number>, name: string, v: number): void => {
  if (name === "__proto__") Object.defineProperty(out, name, { value: v, enumerable: true, writable: true, configurable: true });
  else out[name] = v;
};

const withoutNaN = (metrics: Metrics): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const name in metrics) {
    const v = metrics[name]!;
    if (v === v) setMetric(out, name, v);
  }
  return out;
};

/**
 * Record i as `health_metrics` holds it: the seed id in decimal and its metrics, NaN values left
 * out. The general path's reading of a record; the fast path writes the same from the records.
 */
export const healthRecord = (records: CheckedRecords, i: number): readonly [string, Record<string, number>] => {
  switch (records.kind) {
    case "rows": {
      const { columns, rows, seedIds } = records;
      const nc = columns.length;
      const metrics: Record<string, number> = {};
      for (let c = 0; c < nc; c++) {
        const v = rows[i * nc + c]!;
        if (v === v) setMetric(metrics, columns[c]!, v);
      }
      return [String(seedIds === undefined ? i : seedIds[i]!), metrics];
    }
    case "map":
      return [String(records.seeds[i]!), withoutNaN(records.metrics[i]!)];
    case "object":
      return [records.seeds[i]!, withoutNaN(records.metrics[i]!)];
  }
};
