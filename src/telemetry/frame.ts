import type { LayerHealthReport } from "../protocol/messages.ts";

/**
 * A LayerHealthReport as Tamiyo reads it: the envelope, and `health_metrics` as columns. Scoring
 * runs over a metric for many seeds at a time, so a column per metric is the shape it wants,
 * and building it costs a fraction of building one object per seed (decode.ts).
 *
 * `values[c][i]` is metric `columns[c]` of seed `seeds[i]`; NaN where that seed reported no
 * such metric (the data plane's own convention: NaN = does not apply, telemetry.ts).
 */
export interface TelemetryFrame {
  readonly layerId: string;
  readonly messageId: string;
  /** Seconds since the epoch. */
  readonly timestamp: number;
  readonly source: string;
  /** `telemetry_window`: [start, end]. */
  readonly window: readonly [number, number];
  readonly totalSeeds: number;
  readonly activeSeeds: number;
  readonly performanceSummary: Readonly<Record<string, unknown>>;
  readonly anomalies: readonly unknown[];
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly correlationId?: string;
  /** Seed ids, in the order the report lists them. */
  readonly seeds: Float64Array;
  readonly columns: readonly string[];
  readonly values: readonly Float64Array[];
}

/** The envelope fields of a frame, from a decoded report (health_metrics aside). */
export const frameEnvelope = (r: LayerHealthReport): Omit<TelemetryFrame, "seeds" | "columns" | "values"> => ({
  layerId: r.layer_id,
  messageId: r.message_id,
  timestamp: r.timestamp,
  source: r.source,
  window: r.telemetry_window,
  totalSeeds: r.total_seeds,
  activeSeeds: r.active_seeds,
  performanceSummary: r.performance_summary,
  anomalies: r.anomalies,
  ...(r.metadata !== undefined ? { metadata: r.metadata } : {}),
  ...(r.correlation_id !== undefined ? { correlationId: r.correlation_id } : {}),
});

/** A decoded report to a frame: the slow path, for reports the scanner leaves to the Schema decoder. */
export const frameOfReport = (r: LayerHealthReport): TelemetryFrame => {
  const seedKeys = Object.keys(r.health_metrics);
  const seeds = new Float64Array(seedKeys.length);
  const index = new Map<string, number>();
  const columns: string[] = [];
  const values: Float64Array[] = [];
  seedKeys.forEach((key, i) => {
    seeds[i] = Number(key);
    const metrics = r.health_metrics[key]!;
    for (const name in metrics) {
      let c = index.get(name);
      if (c === undefined) {
        c = columns.length;
        index.set(name, c);
        columns.push(name);
        values.push(new Float64Array(seedKeys.length).fill(Number.NaN));
      }
      values[c]![i] = metrics[name]!;
    }
  });
  return { ...frameEnvelope(r), seeds, columns, values };
};

/** One column by name, or undefined when no seed of the frame reported it. */
export const frameColumn = (frame: TelemetryFrame, metric: string): Float64Array | undefined => {
  const c = frame.columns.indexOf(metric);
  return c < 0 ? undefined : frame.values[c];
};

/** The frame's records as seed id -> { metric: value } (NaN cells left out): for code that wants objects. */
export const frameRecords = (frame: TelemetryFrame): Map<number, Record<string, number>> => {
  const out = new Map<number, Record<string, number>>();
  for (let i = 0; i < frame.seeds.length; i++) {
    const metrics: Record<string, number> = {};
    for (let c = 0; c < frame.columns.length; c++) {
      const v = frame.values[c]![i]!;
      if (v === v) metrics[frame.columns[c]!] = v;
    }
    out.set(frame.seeds[i]!, metrics);
  }
  return out;
};
