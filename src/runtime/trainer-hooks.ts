/**
 * Joins the data plane to the control plane in one process: what a KasminaTrainer reports
 * becomes one message per layer to the layer's actor, and a KasminaLayer's state table becomes
 * the one its actor writes. It is the one runtime module that loads the data plane (tfjs):
 * processes that only steer (esper worker, Tamiyo) never import it.
 */
import type { Metrics } from "../../machines/seed-rules.ts";
import type { KasminaHooks, SeedMetricsBatch } from "../kasmina/hooks.ts";
import type { KasminaLayer } from "../kasmina/layer.ts";
import { blueprintIndex } from "../kasmina/blueprints.ts";
import type { TelemetrySink } from "../kasmina/telemetry.ts";
import type { EsperSystem, LayerSpec } from "./system.ts";

/** The LayerSpec that makes a layer actor drive this KasminaLayer's seeds (same table, same blueprint registry). */
export const layerSpecOf = (layer: KasminaLayer, spec: Omit<LayerSpec, "id" | "seeds" | "table"> = {}): LayerSpec => ({
  ...spec,
  id: layer.layerId,
  seeds: layer.numSeeds,
  table: layer.table,
  // Only the kinds the layer holds banks for: any other is refused by the layer, not found missing by the next forward pass.
  blueprintIndex: (id) => (id === null ? -1 : layer.supportsBlueprint(id) ? blueprintIndex(id) : -1),
});

/** Per-seed metrics for the validators, leaving out what does not apply (NaN) so an old value is not overwritten by "unknown". */
export const metricsBySeed = (batch: SeedMetricsBatch): Record<number, Metrics> => {
  const bySeed: Record<number, Metrics> = {};
  const width = batch.columns.length;
  for (let seed = 0; seed < batch.numSeeds; seed++) {
    const metrics: Record<string, number> = {};
    for (let c = 0; c < width; c++) {
      const value = batch.rows[seed * width + c]!;
      if (Number.isFinite(value)) metrics[batch.columns[c]!] = value;
    }
    if (Object.keys(metrics).length > 0) bySeed[seed] = metrics;
  }
  return bySeed;
};

/** Where a trainer's reports go: a system's layers in process, or layers followed from another process (`followLayers`). */
export type LayerReports = Pick<EsperSystem, "tick" | "reportMetrics">;

/** Trainer hooks, and a way to wait until the layers have taken in everything they reported. */
export interface SystemHooks extends KasminaHooks {
  /** Resolves once every tick and metrics report made so far has reached its layer's actor. */
  readonly settled: () => Promise<void>;
}

/**
 * Hooks for a KasminaTrainer that feed `system` (or the followers of remote layers): an epoch becomes one tick per layer (the
 * seeds' minimum-epoch validators count them), a metrics window becomes one metrics message per
 * layer, both on the layer's telemetry stream, and telemetry goes to `telemetry` when given (e.g.
 * a TelemetryPublisher's sink). The trainer does not wait for them (a training step never blocks
 * on the control plane); a command the system sends afterwards does, and so does `settled()`.
 */
export const trainerHooks = (system: LayerReports, options: { readonly telemetry?: TelemetrySink } = {}): SystemHooks => {
  let reported: Promise<unknown> = Promise.resolve();
  const track = (report: Promise<void>) => {
    reported = Promise.all([reported, report]);
  };
  return {
    onEpoch: (layerId, epochs) => track(system.tick(layerId, epochs)),
    onSeedMetrics: (layerId, _window, batch) => track(system.reportMetrics(layerId, metricsBySeed(batch))),
    ...(options.telemetry ? { onTelemetry: options.telemetry } : {}),
    settled: () => reported.then(() => undefined),
  };
};
