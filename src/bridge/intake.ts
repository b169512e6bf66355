/**
 * What a layer takes from its telemetry stream (docs/protocol.md: a layer owner reads
 * `P.telemetry.layer.{L}` in group `kasmina`): the trainer's epoch count, from a
 * LayerHealthReport's `performance_summary.epoch`, and the metrics its seeds' guards read, from
 * the reports' `health_metrics` and from SeedMetricsSnapshots. Pure.
 *
 * `epoch` is the number of epochs the trainer has finished, a count that only grows: the layer
 * ticks by how far it passed what the layer had counted, so a report read twice, or the same
 * epoch reported by several data-parallel replicas, counts once. Metrics other than the guards'
 * (GUARD_METRICS) stay out of the seeds: they are Tamiyo's, and would only bloat every snapshot.
 */
import { GUARD_METRICS, type Metrics } from "../../machines/seed-rules.ts";
import type { TelemetryContent } from "../telemetry/decode.ts";

export interface Intake {
  /** The highest epoch count reported, if any report carried one. */
  readonly epoch: number | undefined;
  /** Guard metrics per seed (the latest report wins). */
  readonly metrics: ReadonlyMap<number, Metrics>;
}

const GUARD_NAMES: ReadonlySet<string> = new Set(GUARD_METRICS);

const epochOf = (summary: Readonly<Record<string, unknown>>): number | undefined => {
  const e = summary.epoch;
  return typeof e === "number" && Number.isSafeInteger(e) && e >= 0 ? e : undefined;
};

export const intakeOf = (layerId: string, contents: readonly TelemetryContent[]): Intake => {
  let epoch: number | undefined;
  const metrics = new Map<number, Record<string, number>>();
  const put = (seedId: number, name: string, value: number) => {
    if (!Number.isFinite(value)) return;
    let m = metrics.get(seedId);
    if (m === undefined) metrics.set(seedId, (m = {}));
    m[name] = value;
  };
  for (const content of contents) {
    for (const frame of content.frames) {
      if (frame.layerId !== layerId) continue;
      const e = epochOf(frame.performanceSummary);
      if (e !== undefined && (epoch === undefined || e > epoch)) epoch = e;
      frame.columns.forEach((name, c) => {
        if (!GUARD_NAMES.has(name)) return;
        const values = frame.values[c]!;
        for (let i = 0; i < frame.seeds.length; i++) put(frame.seeds[i]!, name, values[i]!);
      });
    }
    for (const snapshot of content.snapshots) {
      if (snapshot.layer_id !== layerId) continue;
      for (const name of Object.keys(snapshot.metrics)) if (GUARD_NAMES.has(name)) put(snapshot.seed_id, name, snapshot.metrics[name]!);
    }
  }
  return { epoch, metrics };
};
