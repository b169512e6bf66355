/**
 * What a trainer says to a layer on the layer's telemetry stream, wherever the layer runs: an
 * epoch tick (`performance_summary.epoch`, an absolute count, so reports of the same epoch tick it
 * once) or the seeds' guard metrics, as a LayerHealthReport. The in-process system and a trainer
 * that follows layers owned elsewhere (layer-follower.ts) both write them with this.
 */
import type { Metrics } from "../../machines/seed-rules.ts";
import { layerHealthReport } from "../protocol/make.ts";
import type { LayerHealthReport } from "../protocol/messages.ts";

export interface TrainerReport {
  readonly source: string;
  readonly layerId: string;
  readonly totalSeeds: number;
  readonly activeSeeds: number;
  readonly summary: Readonly<Record<string, unknown>>;
  readonly health: Readonly<Record<string, Metrics>>;
  readonly nowMs: number;
}

export const trainerReport = (r: TrainerReport): LayerHealthReport => {
  const t = r.nowMs / 1000;
  return layerHealthReport({
    source: r.source,
    timestamp: t,
    layer_id: r.layerId,
    total_seeds: r.totalSeeds,
    active_seeds: r.activeSeeds,
    health_metrics: r.health,
    performance_summary: r.summary,
    telemetry_window: [t, t],
  });
};

/** A metrics report's summary: the epoch is a tick's to say, never a metrics report's. */
export const metricsSummary = (summary: Readonly<Record<string, number>>): Readonly<Record<string, number>> => {
  const { epoch: _epoch, ...rest } = summary;
  return rest;
};
